// Gathers of rows by int32 index, and sums of rows by segment id (the gather's
// gradient) with a compare-and-swap float add, one invocation per word or element.

struct Rows {
    // Output words; words per element; outer count; indices; inner elements; rows of
    // the indexed axis.
    n: u32,
    words: u32,
    outer: u32,
    count: u32,
    inner: u32,
    rows: u32,
    // The number of a checked gather in its plan (from 1).
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Rows;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read> index: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

// out[o, j, r] = src[o, index[j], r]; zero for an index out of range, whose value is
// returned (with x = 1) for the checked variant to report.
fn gather_one(e: u32) -> vec2<i32> {
    let width = p.inner * p.words;
    let w = e % width;
    let j = (e / width) % p.count;
    let o = e / (width * p.count);
    let k = index[j];
    if (k < 0 || u32(k) >= p.rows) {
        out[e] = 0u;
        return vec2<i32>(1, k);
    }
    out[e] = src[(o * p.rows + u32(k)) * width + w];
    return vec2<i32>(0, 0);
}

@compute @workgroup_size(256)
fn gather_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat_index(gid, nwg);
    if (e < p.n) {
        gather_one(e);
    }
}

// The plan's status words: (1 + which gather, the bad index), zero while all is well.
@group(0) @binding(5) var<storage, read_write> status: array<atomic<u32>>;

// `gather_rows` for indices computed on the device: an index out of range is recorded
// in `status` (the gather's number in `p.pad0`), which the session reports.
@compute @workgroup_size(256)
fn gather_rows_checked(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat_index(gid, nwg);
    if (e < p.n) {
        let bad = gather_one(e);
        if (bad.x == 1) {
            atomicStore(&status[1], bitcast<u32>(bad.y));
            atomicStore(&status[0], p.pad0);
        }
    }
}

@group(0) @binding(4) var<storage, read_write> acc: array<atomic<u32>>;

// acc[index[j], r] += src[j, r] for f32 data, ids out of range dropped (`acc` is
// zeroed first). Float adds through compare-and-swap: the order, and so the last bits,
// may vary between runs, as TF's GPU kernel.
@compute @workgroup_size(256)
fn segment_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let j = e / p.inner;
    let r = e % p.inner;
    let k = index[j];
    if (k < 0 || u32(k) >= p.rows) {
        return;
    }
    let v = bitcast<f32>(src[e]);
    let at = u32(k) * p.inner + r;
    var old = atomicLoad(&acc[at]);
    loop {
        let next = bitcast<u32>(bitcast<f32>(old) + v);
        let res = atomicCompareExchangeWeak(&acc[at], old, next);
        if (res.exchanged) {
            break;
        }
        old = res.old_value;
    }
}
