//! Binding of `conv.wgsl`: convolutions and pooling.

use super::params::GeoParams;
use super::{Arg, Loc, Recorder, numel};
use crate::error::{Error, Result};
use crate::ops::{Conv, Op, Pool, Window};
use crate::runtime::shaders::Shader;

fn geo(w: &Window, c: usize, oc: usize) -> GeoParams {
    let u = |v: usize| v as u32;
    GeoParams {
        n: u(w.n),
        h: u(w.h),
        w: u(w.w),
        c: u(c),
        oh: u(w.oh),
        ow: u(w.ow),
        oc: u(oc),
        kh: u(w.k[0]),
        kw: u(w.k[1]),
        sh: u(w.s[0]),
        sw: u(w.s[1]),
        dh: u(w.d[0]),
        dw: u(w.d[1]),
        pt: u(w.pad[0]),
        pl: u(w.pad[1]),
        pad: 0,
    }
}

impl Recorder<'_> {
    /// The workgroups of a `rows x cols` output in 32x32 tiles.
    fn tiles(&self, rows: usize, cols: usize, what: &str) -> Result<[u32; 3]> {
        let max = self.gpu.limits.max_compute_workgroups_per_dimension as usize;
        let g = [cols.div_ceil(32), rows.div_ceil(32)];
        if g.iter().any(|&v| v > max) {
            return Err(Error::resource_exhausted(format!(
                "{what} of {rows}x{cols} needs {g:?} workgroups; the device allows {max} per dimension"
            )));
        }
        Ok([g[0] as u32, g[1] as u32, 1])
    }

    /// Records a convolution or one of its gradients (`op`) with inputs `ins` (as the
    /// graph gives them) into `out` of `out_shape`.
    pub fn conv(&mut self, op: &Op, ins: &[Arg], out: &Loc, out_shape: &[usize]) -> Result<()> {
        if numel(out_shape) == 0 {
            return Ok(());
        }
        let (c, x_shape, f_shape): (&Conv, &[usize], &[usize]) = match op {
            Op::Conv2D(c) => (c, ins[0].shape, ins[1].shape),
            Op::Conv2DBackpropInput(c) | Op::Conv2DBackpropFilter(c) => {
                (c, ins[0].shape, ins[1].shape)
            }
            _ => return Err(Error::internal("conv: not a convolution")),
        };
        let w = Window::new(
            x_shape,
            [f_shape[0], f_shape[1]],
            c.strides,
            c.dilations,
            c.padding,
        )?;
        let p = geo(&w, f_shape[2], f_shape[3]);
        // A gradient reaching nothing (an empty dy or input): zeros.
        let empty = numel(x_shape) == 0 || numel(f_shape) == 0 || w.oh * w.ow == 0;
        if empty {
            self.clear(out);
            return Ok(());
        }
        let (entry, a, b, rows, cols) = match op {
            Op::Conv2D(_) => (
                "conv2d",
                ins[0].loc,
                ins[1].loc,
                w.n * w.oh * w.ow,
                f_shape[3],
            ),
            Op::Conv2DBackpropInput(_) => (
                "conv2d_backprop_input",
                ins[2].loc,
                ins[1].loc,
                w.n * w.h * w.w,
                f_shape[2],
            ),
            _ => (
                "conv2d_backprop_filter",
                ins[0].loc,
                ins[2].loc,
                f_shape[0] * f_shape[1] * f_shape[2],
                f_shape[3],
            ),
        };
        let groups = self.tiles(rows, cols, op.tf_name())?;
        self.dispatch(
            Shader::Conv,
            entry,
            vec![],
            bytemuck::bytes_of(&p),
            &[(1, a), (2, b), (3, out)],
            groups,
        )
    }

    /// Records a pooling op or its gradient.
    pub fn pool(&mut self, op: &Op, ins: &[Arg], out: &Loc, out_shape: &[usize]) -> Result<()> {
        let n = numel(out_shape);
        if n == 0 {
            return Ok(());
        }
        let (p, avg, grad): (&Pool, bool, bool) = match op {
            Op::MaxPool(p) => (p, false, false),
            Op::AvgPool(p) => (p, true, false),
            Op::MaxPoolGrad(p) => (p, false, true),
            Op::AvgPoolGrad(p) => (p, true, true),
            _ => return Err(Error::internal("pool: not a pooling op")),
        };
        let x_shape = ins[0].shape;
        let w = Window::new(x_shape, p.ksize, p.strides, [1, 1], p.padding)?;
        let params = geo(&w, x_shape[3], x_shape[3]);
        let groups = self.groups_1d(n as u64)?;
        if !grad {
            return self.dispatch(
                Shader::Conv,
                "pool",
                vec![("POOL", u32::from(avg))],
                bytemuck::bytes_of(&params),
                &[(1, ins[0].loc), (3, out)],
                groups,
            );
        }
        let entry = if avg {
            "avg_pool_grad"
        } else {
            "max_pool_grad"
        };
        self.dispatch(
            Shader::Conv,
            entry,
            vec![],
            bytemuck::bytes_of(&params),
            &[(1, ins[0].loc), (2, ins[1].loc), (3, out)],
            groups,
        )
    }
}
