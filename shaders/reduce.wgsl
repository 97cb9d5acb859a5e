// Reductions. Each invocation reduces one chunk (at most 4096 elements) of one output
// element; the host chains passes over the partial results until one value per output
// is left, so long reductions run in parallel and no loop runs more than 4096 times
// (software rasterizers cap loop trip counts). Kept and reduced dimensions are
// described separately (shape + input strides), so any set of axes reduces in one
// dispatch; the host merges contiguous dimensions. Also argmax along one axis.

struct Params {
    n_out: u32,
    rank_out: u32,
    n_red: u32,
    rank_red: u32,
    scale: f32,
    chunk: u32,
    chunks: u32,
    pad: u32,
    out_shape: array<vec4<u32>, 2>,
    out_st: array<vec4<u32>, 2>,
    red_shape: array<vec4<u32>, 2>,
    red_st: array<vec4<u32>, 2>,
}

// 0 sum, 1 mean, 2 max, 3 min.
override OP: u32 = 0u;
// 0 f32, 1 i32.
override DT: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

fn base_offset(i: u32) -> u32 {
    var rem = i;
    var o = 0u;
    for (var d = i32(p.rank_out) - 1; d >= 0; d--) {
        let k = u32(d);
        let s = p.out_shape[k / 4u][k % 4u];
        o += (rem % s) * p.out_st[k / 4u][k % 4u];
        rem = rem / s;
    }
    return o;
}

fn red_offset(j: u32) -> u32 {
    var rem = j;
    var o = 0u;
    for (var d = i32(p.rank_red) - 1; d >= 0; d--) {
        let k = u32(d);
        let s = p.red_shape[k / 4u][k % 4u];
        o += (rem % s) * p.red_st[k / 4u][k % 4u];
        rem = rem / s;
    }
    return o;
}

@compute @workgroup_size(256)
fn reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(gid, nwg);
    if (t >= p.n_out * p.chunks) {
        return;
    }
    let i = t / p.chunks;
    let j0 = (t % p.chunks) * p.chunk;
    let j1 = min(j0 + p.chunk, p.n_red);
    let base = base_offset(i);
    // Contiguous single-axis reductions skip the index decomposition.
    let simple = p.rank_red == 1u;
    let step = p.red_st[0][0];
    if (DT == 0u) {
        var acc = 0.0;
        if (OP == 2u) { acc = -3.4028235e38; }
        if (OP == 3u) { acc = 3.4028235e38; }
        var seen_nan = false;
        for (var j = j0; j < j1; j++) {
            var o = base + j * step;
            if (!simple) {
                o = base + red_offset(j);
            }
            let v = bitcast<f32>(a[o]);
            if (OP <= 1u) {
                acc += v;
            } else if ((bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u) {
                // NaN, tested on the bits: WGSL lets compilers assume floats are finite.
                seen_nan = true;
            } else if (OP == 2u) {
                acc = max(acc, v);
            } else {
                acc = min(acc, v);
            }
        }
        if (OP == 1u) {
            acc = acc * p.scale;
        }
        if (seen_nan) {
            acc = bitcast<f32>(0x7fc00000u);
        }
        if (p.n_red == 0u && OP == 2u) { acc = bitcast<f32>(0xff800000u); }
        if (p.n_red == 0u && OP == 3u) { acc = bitcast<f32>(0x7f800000u); }
        out[t] = bitcast<u32>(acc);
    } else {
        var acc = 0;
        if (OP == 2u) { acc = -2147483647 - 1; }
        if (OP == 3u) { acc = 2147483647; }
        for (var j = j0; j < j1; j++) {
            var o = base + j * step;
            if (!simple) {
                o = base + red_offset(j);
            }
            let v = bitcast<i32>(a[o]);
            if (OP <= 1u) {
                acc += v;
            } else if (OP == 2u) {
                acc = max(acc, v);
            } else {
                acc = min(acc, v);
            }
        }
        out[t] = bitcast<u32>(acc);
    }
}

// Argmax over the middle axis of an (outer, len, inner) view: out is int32.
@compute @workgroup_size(256)
fn argmax(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n_out) {
        return;
    }
    let inner = p.out_shape[0][1];
    let len = p.n_red;
    let o = i / inner;
    let r = i % inner;
    let base = o * len * inner + r;
    var best = 0u;
    if (DT == 0u) {
        var bv = bitcast<f32>(a[base]);
        for (var k0 = 0u; k0 < len; k0 += 4096u) {
            for (var k = k0; k < min(k0 + 4096u, len); k++) {
                let v = bitcast<f32>(a[base + k * inner]);
                if (v > bv) {
                    bv = v;
                    best = k;
                }
            }
        }
    } else {
        var bv = bitcast<i32>(a[base]);
        for (var k0 = 0u; k0 < len; k0 += 4096u) {
            for (var k = k0; k < min(k0 + 4096u, len); k++) {
                let v = bitcast<i32>(a[base + k * inner]);
                if (v > bv) {
                    bv = v;
                    best = k;
                }
            }
        }
    }
    out[i] = best;
}
