// Variable updates in place: assign_add / assign_sub for f32, i32, u32 and i64 (two
// words, low first, with carry). Plain assignment is a buffer copy on the host side.

struct Params {
    n: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

// 0 add, 1 sub.
override OP: u32 = 0u;
// 0 f32, 1 i32, 2 u32, 3 i64.
override DT: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> var_: array<u32>;
@group(0) @binding(2) var<storage, read> value: array<u32>;

@compute @workgroup_size(256)
fn assign_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    if (DT == 3u) {
        let alo = var_[2u * i];
        let ahi = var_[2u * i + 1u];
        let blo = value[2u * i];
        let bhi = value[2u * i + 1u];
        if (OP == 0u) {
            let lo = alo + blo;
            var_[2u * i] = lo;
            var_[2u * i + 1u] = ahi + bhi + select(0u, 1u, lo < alo);
        } else {
            var_[2u * i] = alo - blo;
            var_[2u * i + 1u] = ahi - bhi - select(0u, 1u, alo < blo);
        }
        return;
    }
    let x = var_[i];
    let y = value[i];
    var r = 0u;
    if (DT == 0u) {
        let fx = bitcast<f32>(x);
        let fy = bitcast<f32>(y);
        r = bitcast<u32>(select(fx - fy, fx + fy, OP == 0u));
    } else {
        r = select(x - y, x + y, OP == 0u);
    }
    var_[i] = r;
}
