// Layout kernels: a strided gather (transpose, broadcast, contiguous copy), with an
// optional scale for f32 (the gradient of a mean), and a strided scatter-sum (the
// gradient of broadcasting) in reduce.wgsl.

struct Params {
    n: u32,
    rank: u32,
    scale: f32,
    extra: u32,
    shape: array<vec4<u32>, 2>,
    sa: array<vec4<u32>, 2>,
    sb: array<vec4<u32>, 2>,
}

// 1: multiply f32 words by p.scale.
override SCALE: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(256)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    var rem = i;
    var o = 0u;
    for (var d = i32(p.rank) - 1; d >= 0; d--) {
        let k = u32(d);
        let s = p.shape[k / 4u][k % 4u];
        o += (rem % s) * p.sa[k / 4u][k % 4u];
        rem = rem / s;
    }
    if (SCALE == 1u) {
        out[i] = bitcast<u32>(bitcast<f32>(a[o]) * p.scale);
    } else {
        out[i] = a[o];
    }
}
