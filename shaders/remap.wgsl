// Index remapping over 32-bit words (int64 elements are two words): slices, padding,
// tiling and the scatter of a slice's gradient, one invocation per output word; the
// parts of a concatenation; and a broadcasting select.

struct Remap {
    // Output elements, rank, words per element, fill bits (low and high word).
    n: u32,
    rank: u32,
    words: u32,
    fill: u32,
    fill_hi: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
    out_shape: array<vec4<u32>, 2>,
    in_shape: array<vec4<u32>, 2>,
    // Per axis: slice start / padding before / slice start (MODE 0 / 1 / 3).
    a: array<vec4<i32>, 2>,
    // Per axis: slice step (MODE 0 and 3).
    b: array<vec4<i32>, 2>,
    // Per axis: slice count (MODE 3).
    cnt: array<vec4<u32>, 2>,
}

// 0 slice: in = a + out * b. 1 pad: in = out - a, fill outside. 2 tile: in = out mod
// size. 3 slice gradient: in = (out - a) / b where that is a whole index below cnt,
// else zero.
override MODE: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Remap;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(256)
fn remap(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat_index(gid, nwg);
    if (e >= p.n * p.words) {
        return;
    }
    let i = e / p.words;
    let word = e % p.words;
    var rem = i;
    var at = 0u;
    var stride = 1u;
    var ok = true;
    for (var d = i32(p.rank) - 1; d >= 0; d--) {
        let q = u32(d) / 4u;
        let r = u32(d) % 4u;
        let osz = p.out_shape[q][r];
        let c = rem % osz;
        rem = rem / osz;
        let size = p.in_shape[q][r];
        var k = 0i;
        switch MODE {
            case 0u: {
                k = p.a[q][r] + i32(c) * p.b[q][r];
            }
            case 1u: {
                k = i32(c) - p.a[q][r];
                ok = ok && k >= 0 && k < i32(size);
            }
            case 2u: {
                k = i32(c % size);
            }
            default: {
                let t = i32(c) - p.a[q][r];
                let s = p.b[q][r];
                k = t / s;
                ok = ok && k * s == t && k >= 0 && u32(k) < p.cnt[q][r];
            }
        }
        at += u32(max(k, 0)) * stride;
        stride *= size;
    }
    var fill = p.fill;
    if (MODE == 3u) {
        fill = 0u;
    } else if (word == 1u) {
        fill = p.fill_hi;
    }
    if (ok) {
        out[e] = src[at * p.words + word];
    } else {
        out[e] = fill;
    }
}

// One input of a concatenation, one invocation per input word: the input's rows of
// `a.x` words go to rows of `a.y` words of the output, starting at word `a.z`.
@compute @workgroup_size(256)
fn concat_part(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let part = u32(p.a[0].x);
    let whole = u32(p.a[0].y);
    let start = u32(p.a[0].z);
    out[(e / part) * whole + start + e % part] = src[e];
}

struct Select {
    n: u32,
    rank: u32,
    words: u32,
    pad: u32,
    shape: array<vec4<u32>, 2>,
    sc: array<vec4<u32>, 2>,
    sa: array<vec4<u32>, 2>,
    sb: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> ps: Select;
@group(0) @binding(4) var<storage, read> cond: array<u32>;
@group(0) @binding(5) var<storage, read> sel_b: array<u32>;

// out = cond ? src : sel_b, each operand read through its broadcast strides.
@compute @workgroup_size(256)
fn select_words(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat_index(gid, nwg);
    if (e >= ps.n * ps.words) {
        return;
    }
    let i = e / ps.words;
    let word = e % ps.words;
    var rem = i;
    var oc = 0u;
    var oa = 0u;
    var ob = 0u;
    for (var d = i32(ps.rank) - 1; d >= 0; d--) {
        let q = u32(d) / 4u;
        let r = u32(d) % 4u;
        let s = ps.shape[q][r];
        let c = rem % s;
        rem = rem / s;
        oc += c * ps.sc[q][r];
        oa += c * ps.sa[q][r];
        ob += c * ps.sb[q][r];
    }
    if (cond[oc] != 0u) {
        out[e] = src[oa * ps.words + word];
    } else {
        out[e] = sel_b[ob * ps.words + word];
    }
}
