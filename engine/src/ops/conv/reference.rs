//! Reference convolution and pooling: direct loops over NHWC / HWIO, in `f64`.

use super::{Conv, ConvOp, Pool, Window};
use crate::error::Result;
use crate::reference::Value;

/// The output of `op` on `ins`.
pub(super) fn eval(op: &ConvOp, ins: &[&Value]) -> Result<Vec<f64>> {
    match op {
        ConvOp::Conv2D(c) => conv2d(ins[0], ins[1], c),
        ConvOp::Conv2DBackpropInput(c) => conv2d_backprop_input(&ins[0].shape, ins[1], ins[2], c),
        ConvOp::Conv2DBackpropFilter(c) => conv2d_backprop_filter(ins[0], &ins[1].shape, ins[2], c),
        ConvOp::DepthwiseConv2D(c) => depthwise(ins[0], ins[1], c),
        ConvOp::DepthwiseConv2DBackpropInput(c) => {
            depthwise_backprop_input(&ins[0].shape, ins[1], ins[2], c)
        }
        ConvOp::DepthwiseConv2DBackpropFilter(c) => {
            depthwise_backprop_filter(ins[0], &ins[1].shape, ins[2], c)
        }
        ConvOp::MaxPool(p) => pool(ins[0], p, false),
        ConvOp::AvgPool(p) => pool(ins[0], p, true),
        ConvOp::MaxPoolGrad(p) => max_pool_grad(ins[0], ins[1], p),
        ConvOp::AvgPoolGrad(p) => avg_pool_grad(&ins[0].shape, ins[1], p),
    }
}

fn conv_window(x: &[usize], f: &[usize], c: &Conv) -> Result<Window> {
    Window::new(x, [f[0], f[1]], c.strides, c.dilations, c.padding)
}

fn pool_window(x: &[usize], p: &Pool) -> Result<Window> {
    Window::new(x, p.ksize, p.strides, [1, 1], p.padding)
}

/// Calls `f(n, oh, ow, kh, kw, ih, iw)` for every tap of every output inside the input.
fn taps(w: &Window, mut f: impl FnMut(usize, usize, usize, usize, usize, usize, usize)) {
    for n in 0..w.n {
        for oh in 0..w.oh {
            for ow in 0..w.ow {
                for kh in 0..w.k[0] {
                    for kw in 0..w.k[1] {
                        if let Some((ih, iw)) = w.tap(oh, ow, kh, kw) {
                            f(n, oh, ow, kh, kw, ih, iw);
                        }
                    }
                }
            }
        }
    }
}

/// `y[n, oh, ow, o] = sum x[n, ih, iw, i] * f[kh, kw, i, o]`.
pub fn conv2d(x: &Value, f: &Value, c: &Conv) -> Result<Vec<f64>> {
    let w = conv_window(&x.shape, &f.shape, c)?;
    let (ci, co) = (f.shape[2], f.shape[3]);
    let mut y = vec![0.0; w.n * w.oh * w.ow * co];
    taps(&w, |n, oh, ow, kh, kw, ih, iw| {
        let xo = ((n * w.h + ih) * w.w + iw) * ci;
        let yo = ((n * w.oh + oh) * w.ow + ow) * co;
        for i in 0..ci {
            let xv = x.data[xo + i];
            let fo = ((kh * w.k[1] + kw) * ci + i) * co;
            for o in 0..co {
                y[yo + o] += xv * f.data[fo + o];
            }
        }
    });
    Ok(y)
}

/// The gradient of [`conv2d`] with respect to `x` (of `x_shape`).
pub fn conv2d_backprop_input(
    x_shape: &[usize],
    f: &Value,
    dy: &Value,
    c: &Conv,
) -> Result<Vec<f64>> {
    let w = conv_window(x_shape, &f.shape, c)?;
    let (ci, co) = (f.shape[2], f.shape[3]);
    let mut dx = vec![0.0; x_shape.iter().product()];
    taps(&w, |n, oh, ow, kh, kw, ih, iw| {
        let xo = ((n * w.h + ih) * w.w + iw) * ci;
        let yo = ((n * w.oh + oh) * w.ow + ow) * co;
        for i in 0..ci {
            let fo = ((kh * w.k[1] + kw) * ci + i) * co;
            for o in 0..co {
                dx[xo + i] += dy.data[yo + o] * f.data[fo + o];
            }
        }
    });
    Ok(dx)
}

/// The gradient of [`conv2d`] with respect to the filter (of `f_shape`).
pub fn conv2d_backprop_filter(
    x: &Value,
    f_shape: &[usize],
    dy: &Value,
    c: &Conv,
) -> Result<Vec<f64>> {
    let w = conv_window(&x.shape, f_shape, c)?;
    let (ci, co) = (f_shape[2], f_shape[3]);
    let mut df = vec![0.0; f_shape.iter().product()];
    taps(&w, |n, oh, ow, kh, kw, ih, iw| {
        let xo = ((n * w.h + ih) * w.w + iw) * ci;
        let yo = ((n * w.oh + oh) * w.ow + ow) * co;
        for i in 0..ci {
            let fo = ((kh * w.k[1] + kw) * ci + i) * co;
            for o in 0..co {
                df[fo + o] += x.data[xo + i] * dy.data[yo + o];
            }
        }
    });
    Ok(df)
}

/// `y[n, oh, ow, k * m + j] = sum x[n, ih, iw, k] * f[kh, kw, k, j]`: in the filter's
/// row-major layout, output channel `o` of tap `(kh, kw)` is at `(kh * kw_len + kw) *
/// channels * m + o`, and reads input channel `o / m`.
pub fn depthwise(x: &Value, f: &Value, c: &Conv) -> Result<Vec<f64>> {
    let w = conv_window(&x.shape, &f.shape, c)?;
    let (ci, m) = (f.shape[2], f.shape[3]);
    let co = ci * m;
    let mut y = vec![0.0; w.n * w.oh * w.ow * co];
    taps(&w, |n, oh, ow, kh, kw, ih, iw| {
        let xo = ((n * w.h + ih) * w.w + iw) * ci;
        let yo = ((n * w.oh + oh) * w.ow + ow) * co;
        let fo = (kh * w.k[1] + kw) * co;
        for o in 0..co {
            y[yo + o] += x.data[xo + o / m] * f.data[fo + o];
        }
    });
    Ok(y)
}

/// The gradient of [`depthwise`] with respect to `x` (of `x_shape`).
pub fn depthwise_backprop_input(
    x_shape: &[usize],
    f: &Value,
    dy: &Value,
    c: &Conv,
) -> Result<Vec<f64>> {
    let w = conv_window(x_shape, &f.shape, c)?;
    let (ci, m) = (f.shape[2], f.shape[3]);
    let co = ci * m;
    let mut dx = vec![0.0; x_shape.iter().product()];
    taps(&w, |n, oh, ow, kh, kw, ih, iw| {
        let xo = ((n * w.h + ih) * w.w + iw) * ci;
        let yo = ((n * w.oh + oh) * w.ow + ow) * co;
        let fo = (kh * w.k[1] + kw) * co;
        for o in 0..co {
            dx[xo + o / m] += dy.data[yo + o] * f.data[fo + o];
        }
    });
    Ok(dx)
}

/// The gradient of [`depthwise`] with respect to the filter (of `f_shape`).
pub fn depthwise_backprop_filter(
    x: &Value,
    f_shape: &[usize],
    dy: &Value,
    c: &Conv,
) -> Result<Vec<f64>> {
    let w = conv_window(&x.shape, f_shape, c)?;
    let (ci, m) = (f_shape[2], f_shape[3]);
    let co = ci * m;
    let mut df = vec![0.0; f_shape.iter().product()];
    taps(&w, |n, oh, ow, kh, kw, ih, iw| {
        let xo = ((n * w.h + ih) * w.w + iw) * ci;
        let yo = ((n * w.oh + oh) * w.ow + ow) * co;
        let fo = (kh * w.k[1] + kw) * co;
        for o in 0..co {
            df[fo + o] += x.data[xo + o / m] * dy.data[yo + o];
        }
    });
    Ok(df)
}

/// Max (`avg` false) or mean over each window, ignoring the padding.
pub fn pool(x: &Value, p: &Pool, avg: bool) -> Result<Vec<f64>> {
    let w = pool_window(&x.shape, p)?;
    let c = x.shape[3];
    let outs = w.n * w.oh * w.ow;
    let mut acc = vec![if avg { 0.0 } else { f64::NEG_INFINITY }; outs * c];
    let mut count = vec![0usize; outs];
    taps(&w, |n, oh, ow, _, _, ih, iw| {
        let o = (n * w.oh + oh) * w.ow + ow;
        count[o] += 1;
        let xo = ((n * w.h + ih) * w.w + iw) * c;
        for ch in 0..c {
            let v = x.data[xo + ch];
            let a = &mut acc[o * c + ch];
            *a = if avg { *a + v } else { a.max(v) };
        }
    });
    if avg {
        for (o, &k) in count.iter().enumerate() {
            for a in &mut acc[o * c..(o + 1) * c] {
                *a /= k.max(1) as f64;
            }
        }
    }
    Ok(acc)
}

/// The gradient of max pooling: each window's gradient to its first maximum (in the
/// window's row-major order).
pub fn max_pool_grad(x: &Value, dy: &Value, p: &Pool) -> Result<Vec<f64>> {
    let w = pool_window(&x.shape, p)?;
    let c = x.shape[3];
    let mut dx = vec![0.0; x.data.len()];
    for n in 0..w.n {
        for oh in 0..w.oh {
            for ow in 0..w.ow {
                for ch in 0..c {
                    let mut best: Option<(usize, f64)> = None;
                    for kh in 0..w.k[0] {
                        for kw in 0..w.k[1] {
                            if let Some((ih, iw)) = w.tap(oh, ow, kh, kw) {
                                let at = ((n * w.h + ih) * w.w + iw) * c + ch;
                                if best.is_none_or(|(_, b)| x.data[at] > b) {
                                    best = Some((at, x.data[at]));
                                }
                            }
                        }
                    }
                    if let Some((at, _)) = best {
                        dx[at] += dy.data[((n * w.oh + oh) * w.ow + ow) * c + ch];
                    }
                }
            }
        }
    }
    Ok(dx)
}

/// The gradient of average pooling over an input of `x_shape`.
pub fn avg_pool_grad(x_shape: &[usize], dy: &Value, p: &Pool) -> Result<Vec<f64>> {
    let w = pool_window(x_shape, p)?;
    let c = x_shape[3];
    let mut count = vec![0usize; w.n * w.oh * w.ow];
    taps(&w, |n, oh, ow, _, _, _, _| {
        count[(n * w.oh + oh) * w.ow + ow] += 1
    });
    let mut dx = vec![0.0; x_shape.iter().product()];
    taps(&w, |n, oh, ow, _, _, ih, iw| {
        let o = (n * w.oh + oh) * w.ow + ow;
        let xo = ((n * w.h + ih) * w.w + iw) * c;
        for ch in 0..c {
            dx[xo + ch] += dy.data[o * c + ch] / count[o] as f64;
        }
    });
    Ok(dx)
}
