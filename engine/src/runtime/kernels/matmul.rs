//! Binding of `matmul.wgsl`: the batched matmul and its fused variants.

use super::params::*;
use super::{Arg, Loc, Recorder, Step, numel};
use crate::error::{Error, Result};
use crate::runtime::shaders::Shader;

impl Recorder<'_> {
    /// Records `out = op(a) @ op(b)`, with an optional fused epilogue (code of
    /// `matmul.wgsl`'s `EPI`: 1 bias, 2 bias + ReLU, 3 ReLU-gradient mask) reading `aux`,
    /// or (code 4, rank 2, `transpose_a`) also writing the column sums of `b` to `aux`.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        &mut self,
        a: &Arg,
        b: &Arg,
        transpose_a: bool,
        transpose_b: bool,
        out: &Loc,
        out_shape: &[usize],
        epilogue: Option<(u32, &Loc)>,
    ) -> Result<()> {
        let r = a.shape.len();
        let k = if transpose_a {
            a.shape[r - 2]
        } else {
            a.shape[r - 1]
        };
        if numel(out_shape) == 0 {
            return Ok(());
        }
        if k == 0 && epilogue.is_none() {
            self.steps.push(Step::Clear {
                buf: out.buf.clone(),
                offset: out.offset,
                size: out.size,
            });
            return Ok(());
        }
        let (p, groups) = self.matmul_params(a, b, transpose_a, transpose_b, out_shape)?;
        let groups = [groups[0] as u32, groups[1] as u32, groups[2] as u32];
        if let Some((4, sums)) = epilogue {
            return self.dispatch(
                Shader::Matmul,
                "matmul_colsum",
                vec![],
                bytemuck::bytes_of(&p),
                &[(1, a.loc), (2, b.loc), (3, out), (5, sums)],
                groups,
            );
        }
        match epilogue {
            None => self.dispatch(
                Shader::Matmul,
                "matmul",
                vec![],
                bytemuck::bytes_of(&p),
                &[(1, a.loc), (2, b.loc), (3, out)],
                groups,
            ),
            Some((epi, aux)) => self.dispatch(
                Shader::Matmul,
                "matmul_fused",
                vec![("EPI", epi)],
                bytemuck::bytes_of(&p),
                &[(1, a.loc), (2, b.loc), (3, out), (4, aux)],
                groups,
            ),
        }
    }

    /// The uniforms and workgroup grid of `op(a) @ op(b)`.
    fn matmul_params(
        &self,
        a: &Arg,
        b: &Arg,
        transpose_a: bool,
        transpose_b: bool,
        out_shape: &[usize],
    ) -> Result<(MatmulParams, [usize; 3])> {
        let r = a.shape.len();
        let (ar, ac) = (a.shape[r - 2], a.shape[r - 1]);
        let (br, bc) = (b.shape[r - 2], b.shape[r - 1]);
        let (m, nn) = (out_shape[r - 2], out_shape[r - 1]);
        let k = if transpose_a { ar } else { ac };
        let batch = numel(&out_shape[..r - 2]);
        let (a_rs, a_ks) = if transpose_a { (1, ac) } else { (ac, 1) };
        let (b_ks, b_cs) = if transpose_b { (1, bc) } else { (bc, 1) };
        let p = MatmulParams {
            m: m as u32,
            n: nn as u32,
            k: k as u32,
            batch: batch as u32,
            a_rs: a_rs as u32,
            a_ks: a_ks as u32,
            b_ks: b_ks as u32,
            b_cs: b_cs as u32,
            a_bs: (ar * ac) as u32,
            b_bs: (br * bc) as u32,
            c_bs: (m * nn) as u32,
            pad: 0,
        };
        let max = self.gpu.limits.max_compute_workgroups_per_dimension as usize;
        let groups = [nn.div_ceil(32), m.div_ceil(32), batch];
        if groups.iter().any(|&g| g > max) {
            return Err(Error::resource_exhausted(format!(
                "matmul of {batch}x{m}x{nn} needs {groups:?} workgroups; the device allows {max} per dimension"
            )));
        }
        Ok((p, groups))
    }

    /// Records a dense layer's backward pass as one dispatch: `dw = x^T @ dy`,
    /// `db = sum(dy, axis 0)` and `dx = dy @ w^T` (masked where `mask` <= 0), and with
    /// `lower` = (x1, dw1, db1) the lower layer's `dw1 = x1^T @ dx` and
    /// `db1 = sum(dx, axis 0)` too (`dy` at most 32 wide: see `dense_backward_chain`).
    #[allow(clippy::too_many_arguments)]
    pub fn dense_backward(
        &mut self,
        x: &Arg,
        dy: &Arg,
        w: &Arg,
        dw: &Loc,
        db: &Loc,
        dx: &Loc,
        mask: Option<&Loc>,
        lower: Option<(&Arg, &Loc, &Loc)>,
    ) -> Result<()> {
        let dw_shape = [x.shape[1], dy.shape[1]];
        let dx_shape = [dy.shape[0], w.shape[0]];
        let (mut p, g1) = self.matmul_params(x, dy, true, false, &dw_shape)?;
        let (q, g2) = self.matmul_params(dy, w, false, true, &dx_shape)?;
        if numel(&dw_shape) == 0 || numel(&dx_shape) == 0 {
            return Err(Error::internal("dense_backward of an empty layer"));
        }
        p.pad = g1[0] as u32;
        let mut groups = [(g1[0] + g2[0]) as u32, g1[1].max(g2[1]) as u32, 1];
        let bindings = [
            (1, x.loc),
            (2, dy.loc),
            (3, dw),
            (4, mask.unwrap_or(dy.loc)),
            (5, db),
            (6, w.loc),
            (7, dx),
        ];
        let overrides = vec![("MASK", u32::from(mask.is_some()))];
        let qbuf = self.uniform("dense_backward dx", bytemuck::bytes_of(&q));
        let Some((x1, dw1, db1)) = lower else {
            return self.dispatch_with(
                Shader::Matmul,
                "dense_backward",
                overrides,
                bytemuck::bytes_of(&p),
                &bindings,
                &[(8, &qbuf)],
                groups,
            );
        };
        if dy.shape[1] > 32 || x1.shape[0] != dy.shape[0] {
            return Err(Error::internal(
                "dense_backward_chain needs at most 32 outputs and one batch",
            ));
        }
        let dw1_shape = [x1.shape[1], w.shape[0]];
        if numel(&dw1_shape) == 0 {
            return Err(Error::internal("dense_backward_chain of an empty layer"));
        }
        let dh = Arg {
            loc: dx,
            dtype: dy.dtype,
            shape: &dx_shape,
        };
        let (mut lo, g3) = self.matmul_params(x1, &dh, true, false, &dw1_shape)?;
        // One row tile: the dx workgroups compute the lower layer from their tile of dx.
        let entry = if dy.shape[0] <= 32 {
            "dense_backward_pair"
        } else {
            lo.pad = groups[0];
            groups[0] += g3[0] as u32;
            groups[1] = groups[1].max(g3[1] as u32);
            "dense_backward_chain"
        };
        let lobuf = self.uniform("dense_backward lower", bytemuck::bytes_of(&lo));
        let mut all = bindings.to_vec();
        all.extend([(14, x1.loc), (15, dw1), (16, db1)]);
        self.dispatch_with(
            Shader::Matmul,
            entry,
            overrides,
            bytemuck::bytes_of(&p),
            &all,
            &[(8, &qbuf), (13, &lobuf)],
            groups,
        )
    }

    /// Records a classifier head as one dispatch: `logits = x @ w + bias` (at most 32
    /// classes) and straight from them the cross-entropy gradient against `labels`
    /// scaled by `dy` (per row, or a scalar: `dy_mode` as `XentDy::code`).
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_xent_grad(
        &mut self,
        x: &Arg,
        w: &Arg,
        bias: &Loc,
        labels: &Loc,
        dy: &Loc,
        sparse: bool,
        dy_mode: u32,
        out: &Loc,
    ) -> Result<()> {
        let logits = [x.shape[0], w.shape[1]];
        if logits[1] > 32 {
            return Err(Error::internal("matmul_xent_grad needs at most 32 classes"));
        }
        if numel(&logits) == 0 {
            return Ok(());
        }
        let (p, groups) = self.matmul_params(x, w, false, false, &logits)?;
        self.dispatch(
            Shader::Matmul,
            "matmul_xent_grad",
            vec![("SPARSE", u32::from(sparse)), ("DY", dy_mode)],
            bytemuck::bytes_of(&p),
            &[
                (1, x.loc),
                (2, w.loc),
                (3, out),
                (4, bias),
                (5, labels),
                (6, dy),
            ],
            [1, groups[1] as u32, 1],
        )
    }

    /// Records a hidden dense layer and the classifier head above it as one dispatch:
    /// `h = x @ w1 + b1` (ReLU with `code` 2; at most 64 units) written to `h`, and
    /// from it the head as [`Recorder::matmul_xent_grad`].
    #[allow(clippy::too_many_arguments)]
    pub fn mlp_head_xent_grad(
        &mut self,
        x: &Arg,
        w1: &Arg,
        b1: &Loc,
        code: u32,
        h: &Loc,
        w: &Arg,
        bias: &Loc,
        labels: &Loc,
        dy: &Loc,
        sparse: bool,
        dy_mode: u32,
        out: &Loc,
    ) -> Result<()> {
        let hidden = [x.shape[0], w1.shape[1]];
        let logits = [x.shape[0], w.shape[1]];
        if logits[1] > 32 || hidden[1] > 64 || !(1..=2).contains(&code) {
            return Err(Error::internal(
                "mlp_head_xent_grad needs at most 64 units and 32 classes",
            ));
        }
        if numel(&logits) == 0 || numel(&hidden) == 0 {
            return Err(Error::internal("mlp_head_xent_grad of an empty layer"));
        }
        let (q, _) = self.matmul_params(x, w1, false, false, &hidden)?;
        let ha = Arg {
            loc: h,
            dtype: x.dtype,
            shape: &hidden,
        };
        let (p, groups) = self.matmul_params(&ha, w, false, false, &logits)?;
        let qbuf = self.uniform("mlp_head hidden", bytemuck::bytes_of(&q));
        self.dispatch_with(
            Shader::Matmul,
            "mlp_head_xent_grad",
            vec![
                ("SPARSE", u32::from(sparse)),
                ("DY", dy_mode),
                ("HEPI", code),
            ],
            bytemuck::bytes_of(&p),
            &[
                (2, w.loc),
                (3, out),
                (4, bias),
                (5, labels),
                (6, dy),
                (9, x.loc),
                (10, w1.loc),
                (11, b1),
                (12, h),
            ],
            &[(8, &qbuf)],
            [1, groups[1] as u32, 1],
        )
    }
}
