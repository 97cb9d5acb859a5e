// Dropout with a counter-based generator: element i keeps when word i % 4 of
// Philox 4x32-10 at counter (i / 4, step, 0x0D0F) under the seeds' key, as a uniform
// with 24 bits, is at least the rate (`dropout_keeps` in rng.rs computes the same).

struct Drop {
    n: u32,
    rate: f32,
    scale: f32,
    pad: u32,
    key: vec2<u32>,
    pad2: vec2<u32>,
}

@group(0) @binding(0) var<uniform> p: Drop;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// The step: an int64 as two words (low first).
@group(0) @binding(2) var<storage, read> step: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// High and low words of a * b.
fn mul_wide(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
    let lo = (mid << 16u) | (p00 & 0xffffu);
    return vec2<u32>(hi, lo);
}

fn philox(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key;
    for (var r = 0u; r < 10u; r++) {
        let p0 = mul_wide(0xD2511F53u, c.x);
        let p1 = mul_wide(0xCD9E8D57u, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
        k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}

@compute @workgroup_size(256)
fn dropout(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    let words = philox(vec4<u32>(i / 4u, step[0], step[1], 0x0D0Fu), p.key);
    let u = f32(words[i % 4u] >> 8u) / 16777216.0;
    out[i] = select(0.0, x[i] * p.scale, u >= p.rate);
}
