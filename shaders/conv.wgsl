// Convolution and pooling over NHWC tensors; filters are HWIO as in TF.
//
// The convolutions are implicit matrix products with the register blocking of
// `matmul.wgsl` (each invocation a 4x4 block, a workgroup a 32x32 tile): the rows are
// output pixels (forward), input pixels (input gradient) or filter taps (filter
// gradient), and the operands are read through the window geometry instead of an
// im2col copy. Pooling runs one invocation per output (forward) or per input element
// (gradients, gathered over the windows covering it: no atomics).

struct Geo {
    // Input batch, height, width, channels.
    n: u32,
    h: u32,
    w: u32,
    c: u32,
    // Output height, width, channels; window height.
    oh: u32,
    ow: u32,
    oc: u32,
    kh: u32,
    // Window width; strides; dilation over height.
    kw: u32,
    sh: u32,
    sw: u32,
    dh: u32,
    // Dilation over width; padding before the first row and column.
    dw: u32,
    pt: u32,
    pl: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> g: Geo;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> f: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// Whether each of `v` lies in [0, hi).
fn inside(v: vec4<i32>, hi: u32) -> vec4<bool> {
    return (v >= vec4<i32>(0)) & (v < vec4<i32>(i32(hi)));
}

// Stores a 4x4 block at (row0, col0) of a rows x cols matrix.
fn store_block(acc: array<vec4<f32>, 4>, row0: u32, col0: u32, rows: u32, cols: u32) {
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + i;
        if (row < rows) {
            for (var j = 0u; j < 4u; j++) {
                let col = col0 + j;
                if (col < cols) {
                    out[row * cols + col] = acc[i][j];
                }
            }
        }
    }
}

// out[n, oh, ow, o] = sum over taps and input channels of x * f.
@compute @workgroup_size(8, 8, 1)
fn conv2d(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let rows = g.n * g.oh * g.ow;
    let row0 = wid.y * 32u + lid.y * 4u;
    let col0 = wid.x * 32u + lid.x * 4u;
    if (row0 >= rows || col0 >= g.oc) {
        return;
    }
    let r = clamp4(row0, rows);
    let plane = g.oh * g.ow;
    let rn = r / plane;
    let ry = (r % plane) / g.ow;
    let rx = r % g.ow;
    // The window's top-left input position (may be in the padding).
    let top = vec4<i32>(ry * g.sh) - i32(g.pt);
    let left = vec4<i32>(rx * g.sw) - i32(g.pl);
    let cc = clamp4(col0, g.oc);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var ky = 0u; ky < g.kh; ky++) {
        for (var kx = 0u; kx < g.kw; kx++) {
            let iy = top + i32(ky * g.dh);
            let ix = left + i32(kx * g.dw);
            let ok = inside(iy, g.h) & inside(ix, g.w);
            let base = select(vec4<u32>(0u), ((rn * g.h + vec4<u32>(iy)) * g.w + vec4<u32>(ix)) * g.c, ok);
            let keep = vec4<f32>(ok);
            let fb = (ky * g.kw + kx) * g.c * g.oc;
            for (var c0 = 0u; c0 < g.c; c0 += 4096u) {
                let c1 = min(c0 + 4096u, g.c);
                for (var ci = c0; ci < c1; ci++) {
                    let av = vec4<f32>(x[base.x + ci], x[base.y + ci], x[base.z + ci], x[base.w + ci]) * keep;
                    let fo = fb + ci * g.oc;
                    let bv = vec4<f32>(f[fo + cc.x], f[fo + cc.y], f[fo + cc.z], f[fo + cc.w]);
                    acc0 += av.x * bv;
                    acc1 += av.y * bv;
                    acc2 += av.z * bv;
                    acc3 += av.w * bv;
                }
            }
        }
    }
    store_block(array<vec4<f32>, 4>(acc0, acc1, acc2, acc3), row0, col0, rows, g.oc);
}

// The input gradient: dx[n, iy, ix, i] = sum over the taps reaching (iy, ix) and the
// output channels of dy * f. `x` is bound to dy here.
@compute @workgroup_size(8, 8, 1)
fn conv2d_backprop_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let rows = g.n * g.h * g.w;
    let row0 = wid.y * 32u + lid.y * 4u;
    let col0 = wid.x * 32u + lid.x * 4u;
    if (row0 >= rows || col0 >= g.c) {
        return;
    }
    let r = clamp4(row0, rows);
    let plane = g.h * g.w;
    let rn = r / plane;
    let ry = vec4<i32>((r % plane) / g.w) + i32(g.pt);
    let rx = vec4<i32>(r % g.w) + i32(g.pl);
    let cc = clamp4(col0, g.c);
    let sh = vec4<i32>(i32(g.sh));
    let sw = vec4<i32>(i32(g.sw));
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var ky = 0u; ky < g.kh; ky++) {
        for (var kx = 0u; kx < g.kw; kx++) {
            // The output whose tap (ky, kx) lands here, if the strides allow one.
            let ty = ry - i32(ky * g.dh);
            let tx = rx - i32(kx * g.dw);
            let oy = ty / sh;
            let ox = tx / sw;
            let ok = (ty >= vec4<i32>(0)) & (tx >= vec4<i32>(0)) & (oy * sh == ty) & (ox * sw == tx)
                & inside(oy, g.oh) & inside(ox, g.ow);
            let base = select(vec4<u32>(0u), ((rn * g.oh + vec4<u32>(oy)) * g.ow + vec4<u32>(ox)) * g.oc, ok);
            let keep = vec4<f32>(ok);
            let fb = (ky * g.kw + kx) * g.c * g.oc;
            let fc = fb + cc * g.oc;
            for (var o0 = 0u; o0 < g.oc; o0 += 4096u) {
                let o1 = min(o0 + 4096u, g.oc);
                for (var o = o0; o < o1; o++) {
                    let av = vec4<f32>(x[base.x + o], x[base.y + o], x[base.z + o], x[base.w + o]) * keep;
                    let bv = vec4<f32>(f[fc.x + o], f[fc.y + o], f[fc.z + o], f[fc.w + o]);
                    acc0 += av.x * bv;
                    acc1 += av.y * bv;
                    acc2 += av.z * bv;
                    acc3 += av.w * bv;
                }
            }
        }
    }
    store_block(array<vec4<f32>, 4>(acc0, acc1, acc2, acc3), row0, col0, rows, g.c);
}

// The filter gradient: df[ky, kx, i, o] = sum over the batch and the outputs of
// x (at the tap) * dy. Rows are (ky, kx, i) flattened; `f` is bound to dy here.
@compute @workgroup_size(8, 8, 1)
fn conv2d_backprop_filter(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let rows = g.kh * g.kw * g.c;
    let row0 = wid.y * 32u + lid.y * 4u;
    let col0 = wid.x * 32u + lid.x * 4u;
    if (row0 >= rows || col0 >= g.oc) {
        return;
    }
    let r = clamp4(row0, rows);
    let ci = r % g.c;
    let tap = r / g.c;
    let dy0 = vec4<i32>((tap / g.kw) * g.dh) - i32(g.pt);
    let dx0 = vec4<i32>((tap % g.kw) * g.dw) - i32(g.pl);
    let cc = clamp4(col0, g.oc);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var n = 0u; n < g.n; n++) {
        for (var oy = 0u; oy < g.oh; oy++) {
            let iy = dy0 + i32(oy * g.sh);
            let oky = inside(iy, g.h);
            for (var ox = 0u; ox < g.ow; ox++) {
                let ix = dx0 + i32(ox * g.sw);
                let ok = oky & inside(ix, g.w);
                let base = select(vec4<u32>(0u), ((n * g.h + vec4<u32>(iy)) * g.w + vec4<u32>(ix)) * g.c + ci, ok);
                let av = vec4<f32>(x[base.x], x[base.y], x[base.z], x[base.w]) * vec4<f32>(ok);
                let yo = ((n * g.oh + oy) * g.ow + ox) * g.oc;
                let bv = vec4<f32>(f[yo + cc.x], f[yo + cc.y], f[yo + cc.z], f[yo + cc.w]);
                acc0 += av.x * bv;
                acc1 += av.y * bv;
                acc2 += av.z * bv;
                acc3 += av.w * bv;
            }
        }
    }
    store_block(array<vec4<f32>, 4>(acc0, acc1, acc2, acc3), row0, col0, rows, g.oc);
}

// Pooling: 0 max, 1 average (over the taps inside the input).
override POOL: u32 = 0u;

@compute @workgroup_size(256)
fn pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    let total = g.n * g.oh * g.ow * g.c;
    if (i >= total) {
        return;
    }
    let ch = i % g.c;
    let pix = i / g.c;
    let n = pix / (g.oh * g.ow);
    let oy = (pix / g.ow) % g.oh;
    let ox = pix % g.ow;
    let y0 = i32(oy * g.sh) - i32(g.pt);
    let x0 = i32(ox * g.sw) - i32(g.pl);
    var best = bitcast<f32>(0xff800000u);
    var sum = 0.0;
    var count = 0u;
    for (var ky = 0u; ky < g.kh; ky++) {
        let iy = y0 + i32(ky);
        if (iy < 0 || iy >= i32(g.h)) {
            continue;
        }
        for (var kx = 0u; kx < g.kw; kx++) {
            let ix = x0 + i32(kx);
            if (ix < 0 || ix >= i32(g.w)) {
                continue;
            }
            let v = x[((n * g.h + u32(iy)) * g.w + u32(ix)) * g.c + ch];
            best = max(best, v);
            sum += v;
            count++;
        }
    }
    if (POOL == 0u) {
        out[i] = best;
    } else {
        out[i] = sum / f32(max(count, 1u));
    }
}

// The first (smallest input offset) maximum of channel `ch` in window (oy, ox), as an
// offset into the batch item's plane of pixels.
fn window_argmax(n: u32, oy: u32, ox: u32, ch: u32) -> u32 {
    let y0 = i32(oy * g.sh) - i32(g.pt);
    let x0 = i32(ox * g.sw) - i32(g.pl);
    var best = 0.0;
    var at = 0xffffffffu;
    for (var ky = 0u; ky < g.kh; ky++) {
        let iy = y0 + i32(ky);
        if (iy < 0 || iy >= i32(g.h)) {
            continue;
        }
        for (var kx = 0u; kx < g.kw; kx++) {
            let ix = x0 + i32(kx);
            if (ix < 0 || ix >= i32(g.w)) {
                continue;
            }
            let p = u32(iy) * g.w + u32(ix);
            let v = x[(n * g.h * g.w + p) * g.c + ch];
            if (at == 0xffffffffu || v > best) {
                best = v;
                at = p;
            }
        }
    }
    return at;
}

// Pooling gradients, one invocation per input element: the sum over the windows
// covering it of dy (max: where it is the window's first maximum; average: divided by
// the window's count of taps inside the input). `f` is bound to dy here.
fn pool_grad(i: u32, is_max: bool) {
    let ch = i % g.c;
    let pix = i / g.c;
    let n = pix / (g.h * g.w);
    let p = pix % (g.h * g.w);
    let iy = i32(p / g.w) + i32(g.pt);
    let ix = i32(p % g.w) + i32(g.pl);
    // Windows oy with oy * sh <= iy + pt < oy * sh + kh.
    let ylo = u32(max(iy - i32(g.kh) + i32(g.sh), 0)) / g.sh;
    let yhi = min(u32(iy) / g.sh + 1u, g.oh);
    let xlo = u32(max(ix - i32(g.kw) + i32(g.sw), 0)) / g.sw;
    let xhi = min(u32(ix) / g.sw + 1u, g.ow);
    var sum = 0.0;
    for (var oy = ylo; oy < yhi; oy++) {
        for (var ox = xlo; ox < xhi; ox++) {
            let y0 = i32(oy * g.sh);
            let x0 = i32(ox * g.sw);
            if (iy < y0 || iy >= y0 + i32(g.kh) || ix < x0 || ix >= x0 + i32(g.kw)) {
                continue;
            }
            let d = f[((n * g.oh + oy) * g.ow + ox) * g.c + ch];
            if (is_max) {
                if (window_argmax(n, oy, ox, ch) == p) {
                    sum += d;
                }
            } else {
                let rows = min(y0 + i32(g.kh), i32(g.h) + i32(g.pt)) - max(y0, i32(g.pt));
                let cols = min(x0 + i32(g.kw), i32(g.w) + i32(g.pl)) - max(x0, i32(g.pl));
                sum += d / f32(max(rows * cols, 1));
            }
        }
    }
    out[i] = sum;
}

@compute @workgroup_size(256)
fn max_pool_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i < g.n * g.h * g.w * g.c) {
        pool_grad(i, true);
    }
}

// Reads no input values: `x` is unbound.
@compute @workgroup_size(256)
fn avg_pool_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i < g.n * g.h * g.w * g.c) {
        pool_grad(i, false);
    }
}

// Depthwise convolution, one invocation per output element: output channel `o` reads
// input channel `o / m` (m = oc / c filters per channel) and, in the filter's HWIO
// layout, element `(ky * kw + kx) * oc + o`.
@compute @workgroup_size(256)
fn depthwise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= g.n * g.oh * g.ow * g.oc) {
        return;
    }
    let o = i % g.oc;
    let pix = i / g.oc;
    let ox = pix % g.ow;
    let oy = (pix / g.ow) % g.oh;
    let n = pix / (g.ow * g.oh);
    let ch = o / (g.oc / g.c);
    var sum = 0.0;
    for (var ky = 0u; ky < g.kh; ky++) {
        let iy = i32(oy * g.sh + ky * g.dh) - i32(g.pt);
        if (iy < 0 || iy >= i32(g.h)) {
            continue;
        }
        for (var kx = 0u; kx < g.kw; kx++) {
            let ix = i32(ox * g.sw + kx * g.dw) - i32(g.pl);
            if (ix < 0 || ix >= i32(g.w)) {
                continue;
            }
            let xv = x[((n * g.h + u32(iy)) * g.w + u32(ix)) * g.c + ch];
            sum += xv * f[(ky * g.kw + kx) * g.oc + o];
        }
    }
    out[i] = sum;
}

// The input gradient of `depthwise`, one invocation per input element: the sum over the
// taps reaching it and the channel's m filters of dy * f. `x` is bound to dy here.
@compute @workgroup_size(256)
fn depthwise_backprop_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= g.n * g.h * g.w * g.c) {
        return;
    }
    let ch = i % g.c;
    let pix = i / g.c;
    let ix = i32(pix % g.w) + i32(g.pl);
    let iy = i32((pix / g.w) % g.h) + i32(g.pt);
    let n = pix / (g.w * g.h);
    let m = g.oc / g.c;
    var sum = 0.0;
    for (var ky = 0u; ky < g.kh; ky++) {
        // Output rows oy with oy * sh + ky * dh = iy + pt.
        let ty = iy - i32(ky * g.dh);
        if (ty < 0 || ty % i32(g.sh) != 0 || u32(ty) / g.sh >= g.oh) {
            continue;
        }
        let oy = u32(ty) / g.sh;
        for (var kx = 0u; kx < g.kw; kx++) {
            let tx = ix - i32(kx * g.dw);
            if (tx < 0 || tx % i32(g.sw) != 0 || u32(tx) / g.sw >= g.ow) {
                continue;
            }
            let ox = u32(tx) / g.sw;
            let dyo = ((n * g.oh + oy) * g.ow + ox) * g.oc + ch * m;
            let fo = (ky * g.kw + kx) * g.oc + ch * m;
            for (var j = 0u; j < m; j++) {
                sum += x[dyo + j] * f[fo + j];
            }
        }
    }
    out[i] = sum;
}

// The filter gradient of `depthwise`, one invocation per filter element: the sum over
// the batch and the output pixels of x * dy. `f` is bound to dy here.
@compute @workgroup_size(256)
fn depthwise_backprop_filter(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= g.kh * g.kw * g.oc) {
        return;
    }
    let o = i % g.oc;
    let tap = i / g.oc;
    let kx = tap % g.kw;
    let ky = tap / g.kw;
    let ch = o / (g.oc / g.c);
    var sum = 0.0;
    for (var n = 0u; n < g.n; n++) {
        for (var oy = 0u; oy < g.oh; oy++) {
            let iy = i32(oy * g.sh + ky * g.dh) - i32(g.pt);
            if (iy < 0 || iy >= i32(g.h)) {
                continue;
            }
            for (var ox = 0u; ox < g.ow; ox++) {
                let ix = i32(ox * g.sw + kx * g.dw) - i32(g.pl);
                if (ix < 0 || ix >= i32(g.w)) {
                    continue;
                }
                let xv = x[((n * g.h + u32(iy)) * g.w + u32(ix)) * g.c + ch];
                sum += xv * f[((n * g.oh + oy) * g.ow + ox) * g.oc + o];
            }
        }
    }
    out[i] = sum;
}
