//! Binding of `remap.wgsl`, `gather.wgsl` and `random.wgsl`: slices, padding, tiling,
//! concatenation, select, gathers, segment sums and dropout.

use super::params::{DropParams, RemapParams, RowsParams, SelectParams};
use super::{Arg, Loc, MAX_RANK, Recorder, numel, pack};
use crate::error::{Error, Result};
use crate::ops::{Op, SliceAxis, StridedSpec};
use crate::reference::broadcast_strides;
use crate::rng::key_of;
use crate::runtime::shaders::Shader;
use crate::tensor::DType;

fn words(d: DType) -> usize {
    d.device_size() / 4
}

fn pack_i(v: &[i64]) -> [i32; 8] {
    let mut out = [0i32; 8];
    for (o, &x) in out.iter_mut().zip(v) {
        *o = x as i32;
    }
    out
}

fn rank_ok(rank: usize) -> Result<()> {
    if rank > MAX_RANK {
        return Err(Error::unimplemented(format!(
            "tensors of rank {rank} (max {MAX_RANK})"
        )));
    }
    Ok(())
}

/// The bits of `value` as an element of `dtype` (low word, high word).
fn fill_bits(value: f32, dtype: DType) -> (u32, u32) {
    match dtype {
        DType::F32 => (value.to_bits(), 0),
        DType::I64 => {
            let v = value as i64;
            (v as u32, (v >> 32) as u32)
        }
        DType::Bool => (u32::from(value != 0.0), 0),
        DType::I32 => (value as i32 as u32, 0),
        DType::U32 => (value as u32, 0),
    }
}

impl Recorder<'_> {
    #[allow(clippy::too_many_arguments)]
    fn remap(
        &mut self,
        mode: u32,
        src: &Loc,
        dtype: DType,
        in_shape: &[usize],
        out: &Loc,
        out_shape: &[usize],
        a: &[i64],
        b: &[i64],
        cnt: &[usize],
        fill: f32,
    ) -> Result<()> {
        rank_ok(out_shape.len())?;
        let n = numel(out_shape);
        if n == 0 {
            return Ok(());
        }
        let w = words(dtype);
        let (fill, fill_hi) = fill_bits(fill, dtype);
        let p = RemapParams {
            n: n as u32,
            rank: out_shape.len() as u32,
            words: w as u32,
            fill,
            fill_hi,
            pad: [0; 3],
            out_shape: pack(out_shape),
            in_shape: pack(in_shape),
            a: pack_i(a),
            b: pack_i(b),
            cnt: pack(cnt),
        };
        let groups = self.groups_1d((n * w) as u64)?;
        self.dispatch(
            Shader::Remap,
            "remap",
            vec![("MODE", mode)],
            bytemuck::bytes_of(&p),
            &[(1, src), (3, out)],
            groups,
        )
    }

    /// Records the slice `axes` of `x` (shrunk axes are kept as size 1 here: the
    /// output's layout is the same).
    fn slice_axes(&mut self, x: &Arg, axes: &[SliceAxis], out: &Loc) -> Result<()> {
        let full: Vec<usize> = axes.iter().map(|a| a.count).collect();
        let a: Vec<i64> = axes.iter().map(|a| a.start).collect();
        let b: Vec<i64> = axes.iter().map(|a| a.step).collect();
        self.remap(0, x.loc, x.dtype, x.shape, out, &full, &a, &b, &[], 0.0)
    }

    /// Records the index ops: slices, padding, tiling, concatenation, select, gathers,
    /// segment sums and dropout.
    pub fn index_op(&mut self, op: &Op, ins: &[Arg], out: &Loc, out_shape: &[usize]) -> Result<()> {
        let n = numel(out_shape);
        match op {
            Op::Slice { begin, size } => {
                let axes = StridedSpec::from_slice(begin, size).resolve(ins[0].shape)?;
                self.slice_axes(&ins[0], &axes, out)
            }
            Op::StridedSlice(spec) => {
                let axes = spec.resolve(ins[0].shape)?;
                self.slice_axes(&ins[0], &axes, out)
            }
            Op::StridedSliceGrad(spec) => {
                let axes = spec.resolve(ins[0].shape)?;
                let full: Vec<usize> = axes.iter().map(|a| a.count).collect();
                let a: Vec<i64> = axes.iter().map(|a| a.start).collect();
                let b: Vec<i64> = axes.iter().map(|a| a.step).collect();
                let dy = &ins[1];
                self.remap(
                    3, dy.loc, dy.dtype, &full, out, out_shape, &a, &b, &full, 0.0,
                )
            }
            Op::Pad { paddings, value } => {
                let a: Vec<i64> = paddings.iter().map(|p| p[0] as i64).collect();
                let x = &ins[0];
                self.remap(
                    1,
                    x.loc,
                    x.dtype,
                    x.shape,
                    out,
                    out_shape,
                    &a,
                    &[],
                    &[],
                    *value,
                )
            }
            Op::Tile { .. } => {
                let x = &ins[0];
                if numel(x.shape) == 0 {
                    return Ok(());
                }
                self.remap(
                    2,
                    x.loc,
                    x.dtype,
                    x.shape,
                    out,
                    out_shape,
                    &[],
                    &[],
                    &[],
                    0.0,
                )
            }
            Op::Concat { axis } => {
                let inner = numel(&out_shape[axis + 1..]);
                let w = words(ins[0].dtype);
                let whole = out_shape[*axis] * inner * w;
                let mut start = 0;
                for x in ins {
                    let part = x.shape[*axis] * inner * w;
                    let count = numel(x.shape) * w;
                    if count > 0 {
                        let mut p = RemapParams::zeroed_with(count as u32);
                        p.a[0] = part as i32;
                        p.a[1] = whole as i32;
                        p.a[2] = start as i32;
                        let groups = self.groups_1d(count as u64)?;
                        self.dispatch(
                            Shader::Remap,
                            "concat_part",
                            vec![],
                            bytemuck::bytes_of(&p),
                            &[(1, x.loc), (3, out)],
                            groups,
                        )?;
                    }
                    start += part;
                }
                Ok(())
            }
            Op::Select => {
                rank_ok(out_shape.len())?;
                if n == 0 {
                    return Ok(());
                }
                let w = words(ins[1].dtype);
                let p = SelectParams {
                    n: n as u32,
                    rank: out_shape.len() as u32,
                    words: w as u32,
                    pad: 0,
                    shape: pack(out_shape),
                    sc: pack(&broadcast_strides(ins[0].shape, out_shape)),
                    sa: pack(&broadcast_strides(ins[1].shape, out_shape)),
                    sb: pack(&broadcast_strides(ins[2].shape, out_shape)),
                };
                let groups = self.groups_1d((n * w) as u64)?;
                self.dispatch(
                    Shader::Remap,
                    "select_words",
                    vec![],
                    bytemuck::bytes_of(&p),
                    &[(1, ins[1].loc), (3, out), (4, ins[0].loc), (5, ins[2].loc)],
                    groups,
                )
            }
            Op::Gather { axis, .. } => {
                if n == 0 {
                    return Ok(());
                }
                let (pr, idx) = (&ins[0], &ins[1]);
                let w = words(pr.dtype);
                let mut p = RowsParams {
                    n: (n * w) as u32,
                    words: w as u32,
                    outer: numel(&pr.shape[..*axis]) as u32,
                    count: numel(idx.shape) as u32,
                    inner: numel(&pr.shape[axis + 1..]) as u32,
                    rows: pr.shape[*axis] as u32,
                    pad: [0; 2],
                };
                let groups = self.groups_1d((n * w) as u64)?;
                if let Some((status, id)) = self.status.clone() {
                    p.pad[0] = id;
                    return self.dispatch(
                        Shader::Gather,
                        "gather_rows_checked",
                        vec![],
                        bytemuck::bytes_of(&p),
                        &[(1, pr.loc), (2, idx.loc), (3, out), (5, &status)],
                        groups,
                    );
                }
                self.dispatch(
                    Shader::Gather,
                    "gather_rows",
                    vec![],
                    bytemuck::bytes_of(&p),
                    &[(1, pr.loc), (2, idx.loc), (3, out)],
                    groups,
                )
            }
            Op::UnsortedSegmentSum { num_segments } => {
                self.clear(out);
                let (data, ids) = (&ins[0], &ins[1]);
                let count = numel(data.shape);
                let rows = numel(ids.shape);
                if count == 0 || n == 0 {
                    return Ok(());
                }
                let p = RowsParams {
                    n: count as u32,
                    words: 1,
                    outer: 1,
                    count: rows as u32,
                    inner: (count / rows.max(1)) as u32,
                    rows: *num_segments as u32,
                    pad: [0; 2],
                };
                let groups = self.groups_1d(count as u64)?;
                self.dispatch(
                    Shader::Gather,
                    "segment_sum",
                    vec![],
                    bytemuck::bytes_of(&p),
                    &[(1, data.loc), (2, ids.loc), (4, out)],
                    groups,
                )
            }
            Op::Dropout { rate, seed } => {
                if n == 0 {
                    return Ok(());
                }
                let p = DropParams {
                    n: n as u32,
                    rate: *rate,
                    scale: (1.0 / (1.0 - f64::from(*rate))) as f32,
                    pad: 0,
                    key: key_of(*seed),
                    pad2: [0; 2],
                };
                let groups = self.groups_1d(n as u64)?;
                self.dispatch(
                    Shader::Random,
                    "dropout",
                    vec![],
                    bytemuck::bytes_of(&p),
                    &[(1, ins[0].loc), (2, ins[1].loc), (3, out)],
                    groups,
                )
            }
            _ => Err(Error::internal(format!(
                "index_op: {} is not an index op",
                op.tf_name()
            ))),
        }
    }
}

impl RemapParams {
    fn zeroed_with(n: u32) -> RemapParams {
        let mut p: RemapParams = bytemuck::Zeroable::zeroed();
        p.n = n;
        p
    }
}
