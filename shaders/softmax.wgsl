// Row-wise kernels over the last axis: softmax, log-softmax and the two
// cross-entropy losses, each computed stably (max subtracted before exp). One
// invocation per row. Loops over a row run in blocks of 4096 (software rasterizers
// cap loop trip counts).

struct Params {
    rows: u32,
    cols: u32,
    // xent_grad: 1 when labels are class indices.
    sparse: u32,
    // xent_grad: how dy is given: 0 one per row, 1 one scalar to divide by the number
    // of rows (the gradient of a mean of the losses), 2 one scalar (of a sum).
    mean: u32,
}

// softmax: 0 softmax, 1 log-softmax.
override OP: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn row_max(base: u32) -> f32 {
    var m = logits[base];
    for (var j0 = 0u; j0 < p.cols; j0 += 4096u) {
        for (var j = j0; j < min(j0 + 4096u, p.cols); j++) {
            m = max(m, logits[base + j]);
        }
    }
    return m;
}

// log(sum(exp(x - m))) for the row.
fn row_lse(base: u32, m: f32) -> f32 {
    var s = 0.0;
    for (var j0 = 0u; j0 < p.cols; j0 += 4096u) {
        for (var j = j0; j < min(j0 + 4096u, p.cols); j++) {
            s += exp(logits[base + j] - m);
        }
    }
    return log(s);
}

@compute @workgroup_size(256)
fn softmax(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = flat_index(gid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    let m = row_max(base);
    let lse = row_lse(base, m);
    for (var j0 = 0u; j0 < p.cols; j0 += 4096u) {
        for (var j = j0; j < min(j0 + 4096u, p.cols); j++) {
            let l = logits[base + j] - m - lse;
            if (OP == 1u) {
                out[base + j] = l;
            } else {
                out[base + j] = exp(l);
            }
        }
    }
}

// Cross-entropy against a label distribution (f32 words in `labels`).
@compute @workgroup_size(256)
fn xent(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = flat_index(gid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    let m = row_max(base);
    let lse = row_lse(base, m);
    var loss = 0.0;
    for (var j0 = 0u; j0 < p.cols; j0 += 4096u) {
        for (var j = j0; j < min(j0 + 4096u, p.cols); j++) {
            let y = bitcast<f32>(labels[base + j]);
            loss -= y * (logits[base + j] - m - lse);
        }
    }
    out[row] = loss;
}

// Cross-entropy against integer class labels; NaN for a label out of range.
@compute @workgroup_size(256)
fn sparse_xent(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = flat_index(gid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    let label = labels[row];
    if (label >= p.cols) {
        out[row] = bitcast<f32>(0x7fc00000u);
        return;
    }
    let m = row_max(base);
    let lse = row_lse(base, m);
    out[row] = lse + m - logits[base + label];
}

@group(0) @binding(4) var<storage, read> dy: array<f32>;

// The gradient of the cross-entropy with respect to the logits, scaled by the
// incoming gradient of each row's loss: (softmax * sum(labels) - labels) * dy.
@compute @workgroup_size(256)
fn xent_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = flat_index(gid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    let m = row_max(base);
    let lse = row_lse(base, m);
    var g = dy[0];
    if (p.mean == 0u) {
        g = dy[row];
    } else if (p.mean == 1u) {
        g = dy[0] / f32(p.rows);
    }
    var total = 1.0;
    if (p.sparse == 0u) {
        total = 0.0;
        for (var j0 = 0u; j0 < p.cols; j0 += 4096u) {
            for (var j = j0; j < min(j0 + 4096u, p.cols); j++) {
                total += bitcast<f32>(labels[base + j]);
            }
        }
    }
    let label = labels[row];
    for (var j0 = 0u; j0 < p.cols; j0 += 4096u) {
        for (var j = j0; j < min(j0 + 4096u, p.cols); j++) {
            var y = 0.0;
            if (p.sparse == 1u) {
                y = select(0.0, 1.0, label == j);
            } else {
                y = bitcast<f32>(labels[base + j]);
            }
            out[base + j] = (exp(logits[base + j] - m - lse) * total - y) * g;
        }
    }
}
