// Batched matrix product C[b] = op(A[b]) @ op(B[b]) with register blocking: each
// invocation computes a 4x4 block of C, a workgroup of 8x8 invocations a 32x32 tile.
// Transposition is folded into the strides, so one kernel serves all four cases.
// Software rasterizers (lavapipe) run this faster than shared-memory tiling.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    // A element (i, k) is at a_bs * b + i * a_rs + k * a_ks.
    a_rs: u32,
    a_ks: u32,
    // B element (k, j) is at b_bs * b + k * b_ks + j * b_cs.
    b_ks: u32,
    b_cs: u32,
    a_bs: u32,
    b_bs: u32,
    c_bs: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

// Epilogue of `matmul_fused`: 1 adds a bias along the columns, 2 adds the bias and
// applies ReLU, 3 keeps the product where `aux` (a ReLU output) is positive: the
// backward pass of ReLU fused into the matmul that produces its gradient.
override EPI: u32 = 0u;

@group(0) @binding(4) var<storage, read> aux: array<f32>;

// The 4x4 block of C at (row0, col0) of batch bi, and (fifth vector, when `sums`) the
// sums over k of B's four columns.
fn block(bi: u32, row0: u32, col0: u32, sums: bool) -> array<vec4<f32>, 5> {
    let abase = bi * p.a_bs;
    let bbase = bi * p.b_bs;
    // Clamp indices of rows/columns past the edge; their results are not stored.
    let r = vec4<u32>(
        min(row0, p.m - 1u), min(row0 + 1u, p.m - 1u),
        min(row0 + 2u, p.m - 1u), min(row0 + 3u, p.m - 1u));
    let cidx = vec4<u32>(
        min(col0, p.n - 1u), min(col0 + 1u, p.n - 1u),
        min(col0 + 2u, p.n - 1u), min(col0 + 3u, p.n - 1u));
    let ra = abase + r * p.a_rs;
    let cb = bbase + cidx * p.b_cs;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var colsum = vec4<f32>(0.0);
    // Blocks of 4096: software rasterizers cap the trip count of one loop.
    for (var k0 = 0u; k0 < p.k; k0 += 4096u) {
        let k1 = min(k0 + 4096u, p.k);
        for (var kk = k0; kk < k1; kk++) {
            let ak = kk * p.a_ks;
            let bk = kk * p.b_ks;
            let av = vec4<f32>(a[ra.x + ak], a[ra.y + ak], a[ra.z + ak], a[ra.w + ak]);
            let bv = vec4<f32>(b[cb.x + bk], b[cb.y + bk], b[cb.z + bk], b[cb.w + bk]);
            acc0 += av.x * bv;
            acc1 += av.y * bv;
            acc2 += av.z * bv;
            acc3 += av.w * bv;
            if (sums) {
                colsum += bv;
            }
        }
    }
    return array<vec4<f32>, 5>(acc0, acc1, acc2, acc3, colsum);
}

@compute @workgroup_size(8, 8, 1)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * 32u + lid.y * 4u;
    let col0 = wid.x * 32u + lid.x * 4u;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    let rows = block(wid.z, row0, col0, false);
    let cbase = wid.z * p.c_bs;
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + i;
        if (row < p.m) {
            for (var j = 0u; j < 4u; j++) {
                let col = col0 + j;
                if (col < p.n) {
                    c[cbase + row * p.n + col] = rows[i][j];
                }
            }
        }
    }
}

@compute @workgroup_size(8, 8, 1)
fn matmul_fused(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * 32u + lid.y * 4u;
    let col0 = wid.x * 32u + lid.x * 4u;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    let rows = block(wid.z, row0, col0, false);
    let cbase = wid.z * p.c_bs;
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + i;
        if (row < p.m) {
            for (var j = 0u; j < 4u; j++) {
                let col = col0 + j;
                if (col < p.n) {
                    let idx = cbase + row * p.n + col;
                    var v = rows[i][j];
                    switch EPI {
                        case 1u: { v = v + aux[col]; }
                        case 2u: { v = max(v + aux[col], 0.0); }
                        case 3u: { v = select(0.0, v, aux[idx] > 0.0); }
                        default: {}
                    }
                    c[idx] = v;
                }
            }
        }
    }
}

@group(0) @binding(5) var<storage, read_write> sums: array<f32>;

// C = A^T @ B and, in the same pass, the column sums of B (a dense layer's kernel and
// bias gradients: x^T @ dy and sum(dy, axis 0)). Rank 2 only.
fn colsum_tile(wid: vec3<u32>, lid: vec3<u32>) {
    let row0 = wid.y * 32u + lid.y * 4u;
    let col0 = wid.x * 32u + lid.x * 4u;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    let rows = block(0u, row0, col0, row0 == 0u);
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + i;
        if (row < p.m) {
            for (var j = 0u; j < 4u; j++) {
                let col = col0 + j;
                if (col < p.n) {
                    c[row * p.n + col] = rows[i][j];
                }
            }
        }
    }
    if (row0 == 0u) {
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + j;
            if (col < p.n) {
                sums[col] = rows[4][j];
            }
        }
    }
}

@compute @workgroup_size(8, 8, 1)
fn matmul_colsum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    colsum_tile(wid, lid);
}

// The backward pass of a dense layer in one dispatch: the first `p.pad` columns of
// workgroups compute dW = x^T @ dy with db = sum(dy, axis 0) (as `matmul_colsum`), the
// others dx = dy @ W^T, ReLU-masked by `aux` with MASK = 1 (the gradient reaching the
// previous layer's pre-activation).
override MASK: u32 = 0u;

@group(0) @binding(6) var<storage, read> w: array<f32>;
@group(0) @binding(7) var<storage, read_write> dx: array<f32>;
@group(0) @binding(8) var<uniform> q: Params;

fn dx_block(row0: u32, col0: u32) -> array<vec4<f32>, 4> {
    let r = vec4<u32>(
        min(row0, q.m - 1u), min(row0 + 1u, q.m - 1u),
        min(row0 + 2u, q.m - 1u), min(row0 + 3u, q.m - 1u));
    let cidx = vec4<u32>(
        min(col0, q.n - 1u), min(col0 + 1u, q.n - 1u),
        min(col0 + 2u, q.n - 1u), min(col0 + 3u, q.n - 1u));
    let ra = r * q.a_rs;
    let cb = cidx * q.b_cs;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < q.k; k0 += 4096u) {
        let k1 = min(k0 + 4096u, q.k);
        for (var kk = k0; kk < k1; kk++) {
            let ak = kk * q.a_ks;
            let bk = kk * q.b_ks;
            // dy is the left operand here.
            let av = vec4<f32>(b[ra.x + ak], b[ra.y + ak], b[ra.z + ak], b[ra.w + ak]);
            let bv = vec4<f32>(w[cb.x + bk], w[cb.y + bk], w[cb.z + bk], w[cb.w + bk]);
            acc0 += av.x * bv;
            acc1 += av.y * bv;
            acc2 += av.z * bv;
            acc3 += av.w * bv;
        }
    }
    return array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
}

@compute @workgroup_size(8, 8, 1)
fn dense_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    if (wid.x < p.pad) {
        colsum_tile(wid, lid);
        return;
    }
    let row0 = wid.y * 32u + lid.y * 4u;
    let col0 = (wid.x - p.pad) * 32u + lid.x * 4u;
    if (row0 >= q.m || col0 >= q.n) {
        return;
    }
    let rows = dx_block(row0, col0);
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + i;
        if (row < q.m) {
            for (var j = 0u; j < 4u; j++) {
                let col = col0 + j;
                if (col < q.n) {
                    let idx = row * q.n + col;
                    var v = rows[i][j];
                    if (MASK == 1u) {
                        v = select(0.0, v, aux[idx] > 0.0);
                    }
                    dx[idx] = v;
                }
            }
        }
    }
}

// A classifier head in one dispatch: logits = x @ W + bias computed tile by tile into
// workgroup memory, then, per row, the cross-entropy gradient with respect to the
// logits, (softmax(logits) * sum(labels) - labels) * dy (see `xent_grad` in
// softmax.wgsl). Needs every row's logits in one tile: at most 32 classes.
override SPARSE: u32 = 1u;
// dy: 0 one per row, 1 one scalar divided by the rows (a mean), 2 one scalar (a sum).
override DY: u32 = 1u;

@group(0) @binding(5) var<storage, read> labels: array<u32>;
@group(0) @binding(6) var<storage, read> dy: array<f32>;

var<workgroup> tile: array<f32, 1024>;

@compute @workgroup_size(8, 8, 1)
fn matmul_xent_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * 32u + lid.y * 4u;
    let col0 = lid.x * 4u;
    // No early return: every invocation must reach the barrier.
    if (row0 < p.m && col0 < p.n) {
        let rows = block(0u, row0, col0, false);
        for (var i = 0u; i < 4u; i++) {
            for (var j = 0u; j < 4u; j++) {
                let col = min(col0 + j, p.n - 1u);
                tile[(lid.y * 4u + i) * 32u + lid.x * 4u + j] = rows[i][j] + aux[col];
            }
        }
    }
    workgroupBarrier();
    let t = lid.y * 8u + lid.x;
    let row = wid.y * 32u + t;
    if (t >= 32u || row >= p.m) {
        return;
    }
    let base = t * 32u;
    var m = tile[base];
    for (var j = 1u; j < p.n; j++) {
        m = max(m, tile[base + j]);
    }
    var s = 0.0;
    for (var j = 0u; j < p.n; j++) {
        s += exp(tile[base + j] - m);
    }
    let lse = log(s);
    var g = dy[0];
    if (DY == 0u) {
        g = dy[row];
    } else if (DY == 1u) {
        g = dy[0] / f32(p.m);
    }
    var total = 1.0;
    if (SPARSE == 0u) {
        total = 0.0;
        for (var j = 0u; j < p.n; j++) {
            total += bitcast<f32>(labels[row * p.n + j]);
        }
    }
    for (var j = 0u; j < p.n; j++) {
        var y = 0.0;
        if (SPARSE == 1u) {
            y = select(0.0, 1.0, labels[row] == j);
        } else {
            y = bitcast<f32>(labels[row * p.n + j]);
        }
        c[row * p.n + j] = (exp(tile[base + j] - m - lse) * total - y) * g;
    }
}
