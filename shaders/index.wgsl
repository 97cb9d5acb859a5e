// Index kernels: one-hot encoding of int32/uint32 indices.

struct Params {
    n: u32,
    depth: u32,
    on_value: f32,
    off_value: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> indices: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn one_hot(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    let row = i / p.depth;
    let col = i % p.depth;
    out[i] = select(p.off_value, p.on_value, indices[row] == i32(col));
}
