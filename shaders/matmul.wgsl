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
// @instantiate matmul_block ab_block a b p
fn block(bi: u32, row0: u32, col0: u32, sums: bool) -> array<vec4<f32>, 5> {
    return ab_block(bi * p.a_bs, bi * p.b_bs, row0, col0, sums);
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

// The 4x4 block of dx = dy @ W^T at (row0, col0): dy (bound as `b`) is the left
// operand here.
// @instantiate matmul_block dx_rows b w q
fn dx_block(row0: u32, col0: u32) -> array<vec4<f32>, 5> {
    return dx_rows(0u, 0u, row0, col0, false);
}

fn dense_backward_tile(wid: vec3<u32>, lid: vec3<u32>) {
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

@compute @workgroup_size(8, 8, 1)
fn dense_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    dense_backward_tile(wid, lid);
}

// The backward pass of two dense layers in one dispatch, when the upper one has at most
// 32 outputs: the workgroups of `dense_backward` for the upper layer (its dx is the
// lower layer's dy, `dh`), then, from workgroup column `lo.pad` on, the lower layer's
// dW = x^T @ dh and db = sum(dh, axis 0). Each of those workgroups recomputes the 32
// columns of dh it needs, 32 rows at a time, in workgroup memory: dy @ W^T is cheap
// when dy is narrow, and the recomputation saves a dispatch.
@group(0) @binding(13) var<uniform> lo: Params;
@group(0) @binding(14) var<storage, read> x1: array<f32>;
@group(0) @binding(15) var<storage, read_write> dw1: array<f32>;
@group(0) @binding(16) var<storage, read_write> db1: array<f32>;

var<workgroup> dh: array<f32, 1024>;

@compute @workgroup_size(8, 8, 1)
fn dense_backward_chain(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    // Workgroup ids are uniform: these branches keep the barriers below uniform.
    if (wid.x < lo.pad) {
        dense_backward_tile(wid, lid);
        return;
    }
    let tx = wid.x - lo.pad;
    if (wid.y * 32u >= lo.m || tx * 32u >= lo.n) {
        return;
    }
    // This invocation's 4x4 block of dW: rows (inputs) i0.., columns (units) j0...
    let i0 = wid.y * 32u + lid.y * 4u;
    let j0 = tx * 32u + lid.x * 4u;
    let ic = clamp4(i0, lo.m);
    let jc = clamp4(j0, q.n);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var colsum = vec4<f32>(0.0);
    for (var b0 = 0u; b0 < lo.k; b0 += 32u) {
        // dh rows b0 + lid.y * 4 + (0..4), columns j0 + (0..4); rows past the end are 0.
        let row = b0 + lid.y * 4u;
        let rc = clamp4(row, q.m);
        let d = dx_block(row, j0);
        var d0 = d[0];
        var d1 = d[1];
        var d2 = d[2];
        var d3 = d[3];
        if (MASK == 1u) {
            let mr = rc * q.n;
            d0 = select(vec4<f32>(0.0), d0, vec4<f32>(aux[mr.x + jc.x], aux[mr.x + jc.y], aux[mr.x + jc.z], aux[mr.x + jc.w]) > vec4<f32>(0.0));
            d1 = select(vec4<f32>(0.0), d1, vec4<f32>(aux[mr.y + jc.x], aux[mr.y + jc.y], aux[mr.y + jc.z], aux[mr.y + jc.w]) > vec4<f32>(0.0));
            d2 = select(vec4<f32>(0.0), d2, vec4<f32>(aux[mr.z + jc.x], aux[mr.z + jc.y], aux[mr.z + jc.z], aux[mr.z + jc.w]) > vec4<f32>(0.0));
            d3 = select(vec4<f32>(0.0), d3, vec4<f32>(aux[mr.w + jc.x], aux[mr.w + jc.y], aux[mr.w + jc.z], aux[mr.w + jc.w]) > vec4<f32>(0.0));
        }
        let live = vec4<u32>(row, row + 1u, row + 2u, row + 3u) < vec4<u32>(q.m);
        let t0 = lid.y * 128u + lid.x * 4u;
        let z = vec4<f32>(0.0);
        let e0 = select(z, d0, live.x);
        let e1 = select(z, d1, live.y);
        let e2 = select(z, d2, live.z);
        let e3 = select(z, d3, live.w);
        dh[t0] = e0.x;
        dh[t0 + 1u] = e0.y;
        dh[t0 + 2u] = e0.z;
        dh[t0 + 3u] = e0.w;
        dh[t0 + 32u] = e1.x;
        dh[t0 + 33u] = e1.y;
        dh[t0 + 34u] = e1.z;
        dh[t0 + 35u] = e1.w;
        dh[t0 + 64u] = e2.x;
        dh[t0 + 65u] = e2.y;
        dh[t0 + 66u] = e2.z;
        dh[t0 + 67u] = e2.w;
        dh[t0 + 96u] = e3.x;
        dh[t0 + 97u] = e3.y;
        dh[t0 + 98u] = e3.z;
        dh[t0 + 99u] = e3.w;
        workgroupBarrier();
        let nb = min(32u, lo.k - b0);
        for (var bb = 0u; bb < nb; bb++) {
            let xk = (b0 + bb) * lo.a_ks;
            let av = vec4<f32>(
                x1[ic.x * lo.a_rs + xk], x1[ic.y * lo.a_rs + xk],
                x1[ic.z * lo.a_rs + xk], x1[ic.w * lo.a_rs + xk]);
            let t = bb * 32u + lid.x * 4u;
            let dv = vec4<f32>(dh[t], dh[t + 1u], dh[t + 2u], dh[t + 3u]);
            acc0 += av.x * dv;
            acc1 += av.y * dv;
            acc2 += av.z * dv;
            acc3 += av.w * dv;
            colsum += dv;
        }
        workgroupBarrier();
    }
    let acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        let row = i0 + i;
        if (row < lo.m) {
            for (var j = 0u; j < 4u; j++) {
                let col = j0 + j;
                if (col < lo.n) {
                    dw1[row * lo.n + col] = acc[i][j];
                }
            }
        }
    }
    if (i0 == 0u) {
        for (var j = 0u; j < 4u; j++) {
            let col = j0 + j;
            if (col < lo.n) {
                db1[col] = colsum[j];
            }
        }
    }
}

// `dense_backward_chain` for at most 32 rows (one row tile): the dx workgroups keep
// their tile of dh in workgroup memory and compute the lower layer's dW and db for
// their 32 units from it, with no recomputation and no further workgroups.
@compute @workgroup_size(8, 8, 1)
fn dense_backward_pair(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    if (wid.x < p.pad) {
        colsum_tile(wid, lid);
        return;
    }
    if (wid.y > 0u) {
        return;
    }
    let row0 = lid.y * 4u;
    let col0 = (wid.x - p.pad) * 32u + lid.x * 4u;
    // No early return past here: every invocation must reach the barrier.
    let rows = dx_block(row0, col0);
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + j;
            let live = row < q.m && col < q.n;
            var v = rows[i][j];
            if (MASK == 1u) {
                v = select(0.0, v, aux[min(row, q.m - 1u) * q.n + min(col, q.n - 1u)] > 0.0);
            }
            if (live) {
                dx[row * q.n + col] = v;
            }
            dh[(lid.y * 4u + i) * 32u + lid.x * 4u + j] = select(0.0, v, live);
        }
    }
    workgroupBarrier();
    let t = lid.x * 4u;
    for (var i0 = lid.y * 4u; i0 < lo.m; i0 += 32u) {
        let ra = clamp4(i0, lo.m) * lo.a_rs;
        var acc0 = vec4<f32>(0.0);
        var acc1 = vec4<f32>(0.0);
        var acc2 = vec4<f32>(0.0);
        var acc3 = vec4<f32>(0.0);
        for (var bb = 0u; bb < lo.k; bb++) {
            let xk = bb * lo.a_ks;
            let av = vec4<f32>(x1[ra.x + xk], x1[ra.y + xk], x1[ra.z + xk], x1[ra.w + xk]);
            let d = bb * 32u + t;
            let dv = vec4<f32>(dh[d], dh[d + 1u], dh[d + 2u], dh[d + 3u]);
            acc0 += av.x * dv;
            acc1 += av.y * dv;
            acc2 += av.z * dv;
            acc3 += av.w * dv;
        }
        let acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
        for (var i = 0u; i < 4u; i++) {
            let row = i0 + i;
            if (row < lo.m) {
                for (var j = 0u; j < 4u; j++) {
                    let col = col0 + j;
                    if (col < lo.n) {
                        dw1[row * lo.n + col] = acc[i][j];
                    }
                }
            }
        }
    }
    if (lid.y == 0u) {
        var colsum = vec4<f32>(0.0);
        for (var bb = 0u; bb < lo.k; bb++) {
            let d = bb * 32u + t;
            colsum += vec4<f32>(dh[d], dh[d + 1u], dh[d + 2u], dh[d + 3u]);
        }
        for (var j = 0u; j < 4u; j++) {
            if (col0 + j < lo.n) {
                db1[col0 + j] = colsum[j];
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
    xent_rows(wid, lid);
}

// The cross-entropy gradient of the workgroup's rows from the logits in `tile`.
fn xent_rows(wid: vec3<u32>, lid: vec3<u32>) {
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

// A hidden dense layer and the classifier head above it in one dispatch: each workgroup
// computes its 32 rows of h = x @ W1 + b1 (ReLU when HEPI = 2; at most 64 units, `q`)
// into workgroup memory and to `h`, then the head's logits from there (`p`: its k is
// the units) and their cross-entropy gradient as `matmul_xent_grad`.
override HEPI: u32 = 2u;

@group(0) @binding(9) var<storage, read> hx: array<f32>;
@group(0) @binding(10) var<storage, read> hw: array<f32>;
@group(0) @binding(11) var<storage, read> hb: array<f32>;
@group(0) @binding(12) var<storage, read_write> h: array<f32>;

var<workgroup> hid: array<f32, 2048>;

// @instantiate matmul_block hidden_block hx hw q

@compute @workgroup_size(8, 8, 1)
fn mlp_head_xent_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * 32u + lid.y * 4u;
    for (var col0 = lid.x * 4u; col0 < q.n; col0 += 32u) {
        let cidx = clamp4(col0, q.n);
        let acc = hidden_block(0u, 0u, row0, col0, false);
        for (var i = 0u; i < 4u; i++) {
            let row = row0 + i;
            for (var j = 0u; j < 4u; j++) {
                let col = col0 + j;
                var v = acc[i][j] + hb[cidx[j]];
                if (HEPI == 2u) {
                    v = max(v, 0.0);
                }
                if (col < q.n) {
                    hid[(lid.y * 4u + i) * 64u + col] = v;
                    if (row < q.m) {
                        h[row * q.n + col] = v;
                    }
                }
            }
        }
    }
    workgroupBarrier();
    let col0 = lid.x * 4u;
    if (row0 < p.m && col0 < p.n) {
        let cidx = clamp4(col0, p.n);
        let cb = cidx * p.b_cs;
        let hr = lid.y * 4u * 64u;
        var acc0 = vec4<f32>(0.0);
        var acc1 = vec4<f32>(0.0);
        var acc2 = vec4<f32>(0.0);
        var acc3 = vec4<f32>(0.0);
        for (var kk = 0u; kk < p.k; kk++) {
            let bk = kk * p.b_ks;
            let av = vec4<f32>(hid[hr + kk], hid[hr + 64u + kk], hid[hr + 128u + kk], hid[hr + 192u + kk]);
            let bv = vec4<f32>(b[cb.x + bk], b[cb.y + bk], b[cb.z + bk], b[cb.w + bk]);
            acc0 += av.x * bv;
            acc1 += av.y * bv;
            acc2 += av.z * bv;
            acc3 += av.w * bv;
        }
        let acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
        for (var i = 0u; i < 4u; i++) {
            for (var j = 0u; j < 4u; j++) {
                tile[(lid.y * 4u + i) * 32u + lid.x * 4u + j] = acc[i][j] + aux[cidx[j]];
            }
        }
    }
    workgroupBarrier();
    xent_rows(wid, lid);
}
