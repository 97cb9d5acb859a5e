//! Binding of `reduce.wgsl`: multi-pass chunked reductions.

use super::params::*;
use super::{Arg, Loc, MAX_RANK, REDUCE_CHUNK, Recorder, collapse, dt_code, numel, pack};
use crate::error::{Error, Result};
use crate::ops::ReduceOp;
use crate::reference::strides;
use crate::runtime::shaders::Shader;

impl Recorder<'_> {
    pub(crate) fn reduce(&mut self, x: &Arg, out: &Loc, axes: &[usize], code: u32) -> Result<()> {
        let xs = strides(x.shape);
        let (mut ks, mut kst, mut rs, mut rst) = (vec![], vec![], vec![], vec![]);
        for (d, (&size, &stride)) in x.shape.iter().zip(&xs).enumerate() {
            if axes.contains(&d) {
                rs.push(size);
                rst.push(stride);
            } else {
                ks.push(size);
                kst.push(stride);
            }
        }
        let (ks, kst) = collapse(&ks, &[kst]);
        let (rs, rst) = collapse(&rs, &[rst]);
        let n_out = numel(&ks);
        let n_red = if numel(x.shape) == 0 { 0 } else { numel(&rs) };
        if ks.len() > MAX_RANK || rs.len() > MAX_RANK {
            return Err(Error::unimplemented(
                "reduction of rank > 8 after merging dimensions",
            ));
        }
        let mean = code == ReduceOp::Mean.code();
        // The mean of nothing is NaN (0 * inf), as in TensorFlow.
        let scale = 1.0 / n_red as f32;
        let mut p = ReduceParams {
            n_out: n_out as u32,
            rank_out: ks.len() as u32,
            n_red: n_red as u32,
            rank_red: rs.len() as u32,
            scale,
            chunk: REDUCE_CHUNK as u32,
            chunks: 1,
            pad: 0,
            out_shape: pack(&ks),
            out_st: pack(&kst[0]),
            red_shape: pack(&rs),
            red_st: pack(&rst[0]),
        };
        let dt = dt_code(x.dtype);
        let mut input = x.loc.clone();
        let mut remaining = n_red;
        // Passes over partial results, each reducing chunks of REDUCE_CHUNK elements.
        while remaining > REDUCE_CHUNK {
            let chunks = remaining.div_ceil(REDUCE_CHUNK);
            let bytes = (n_out * chunks * 4) as u64;
            let temp = Loc::whole(
                self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("reduce partials"),
                    size: bytes.max(4),
                    usage: wgpu::BufferUsages::STORAGE,
                    mapped_at_creation: false,
                }),
                bytes,
            );
            p.chunks = chunks as u32;
            let op = if mean { ReduceOp::Sum.code() } else { code };
            let groups = self.groups_1d((n_out * chunks) as u64)?;
            self.dispatch(
                Shader::Reduce,
                "reduce",
                vec![("OP", op), ("DT", dt)],
                bytemuck::bytes_of(&p),
                &[(1, &input), (3, &temp)],
                groups,
            )?;
            // The partials are a contiguous [n_out, chunks] matrix reduced over axis 1.
            p = ReduceParams {
                n_out: n_out as u32,
                rank_out: 1,
                n_red: chunks as u32,
                rank_red: 1,
                scale,
                chunk: REDUCE_CHUNK as u32,
                chunks: 1,
                pad: 0,
                out_shape: pack(&[n_out]),
                out_st: pack(&[chunks]),
                red_shape: pack(&[chunks]),
                red_st: pack(&[1]),
            };
            input = temp;
            remaining = chunks;
        }
        p.chunks = 1;
        let groups = self.groups_1d(n_out as u64)?;
        self.dispatch(
            Shader::Reduce,
            "reduce",
            vec![("OP", code), ("DT", dt)],
            bytemuck::bytes_of(&p),
            &[(1, &input), (3, out)],
            groups,
        )
    }
}
