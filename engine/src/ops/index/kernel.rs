//! The index family's kernel bindings: `remap.wgsl`'s broadcasting select,
//! `gather.wgsl` (gathers, checked or not, and segment sums) and `index.wgsl` (one-hot).

use super::IndexOp;
use crate::error::Result;
use crate::reference::broadcast_strides;
#[cfg(feature = "gpu")]
use crate::runtime::kernels::{Arg, Loc, Recorder, pack, rank_ok, words};
#[cfg(feature = "gpu")]
use crate::runtime::shaders::Shader;
use crate::tensor::num_elements as numel;
#[cfg(feature = "gpu")]
use bytemuck::{Pod, Zeroable};

/// Mirrors `Select` in `remap.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SelectParams {
    n: u32,
    rank: u32,
    words: u32,
    pad: u32,
    shape: [u32; 8],
    sc: [u32; 8],
    sa: [u32; 8],
    sb: [u32; 8],
}

/// Mirrors `Rows` in `gather.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RowsParams {
    n: u32,
    words: u32,
    outer: u32,
    count: u32,
    inner: u32,
    rows: u32,
    pad: [u32; 2],
}

/// Mirrors `Params` in `index.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct OneHotParams {
    n: u32,
    depth: u32,
    on_value: f32,
    off_value: f32,
}

/// Records the kernels of `op` computing `out` (of `out_shape`) from `ins`.
pub(super) fn record(
    op: &IndexOp,
    rec: &mut Recorder<'_>,
    ins: &[Arg<'_>],
    out: &Loc,
    out_shape: &[usize],
) -> Result<()> {
    let n = numel(out_shape);
    match *op {
        IndexOp::Select => select(rec, ins, out, out_shape),
        IndexOp::Gather { axis, .. } => gather(rec, ins, axis, out, n),
        IndexOp::UnsortedSegmentSum { num_segments } => segment_sum(rec, ins, num_segments, out, n),
        IndexOp::OneHot {
            depth,
            on_value,
            off_value,
        } => {
            let p = OneHotParams {
                n: n as u32,
                depth: depth as u32,
                on_value,
                off_value,
            };
            let groups = rec.groups_1d(n as u64)?;
            rec.dispatch(
                Shader::Index,
                "one_hot",
                vec![],
                bytemuck::bytes_of(&p),
                &[(1, ins[0].loc), (3, out)],
                groups,
            )
        }
    }
}

fn select(rec: &mut Recorder<'_>, ins: &[Arg<'_>], out: &Loc, out_shape: &[usize]) -> Result<()> {
    let n = numel(out_shape);
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
    let groups = rec.groups_1d((n * w) as u64)?;
    rec.dispatch(
        Shader::Remap,
        "select_words",
        vec![],
        bytemuck::bytes_of(&p),
        &[(1, ins[1].loc), (3, out), (4, ins[0].loc), (5, ins[2].loc)],
        groups,
    )
}

/// Rows of `ins[0]` along `axis` by the indices `ins[1]`; with the plan's status words,
/// the checked kernel, which reports an index out of range.
fn gather(rec: &mut Recorder<'_>, ins: &[Arg<'_>], axis: usize, out: &Loc, n: usize) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let (pr, idx) = (&ins[0], &ins[1]);
    let w = words(pr.dtype);
    let mut p = RowsParams {
        n: (n * w) as u32,
        words: w as u32,
        outer: numel(&pr.shape[..axis]) as u32,
        count: numel(idx.shape) as u32,
        inner: numel(&pr.shape[axis + 1..]) as u32,
        rows: pr.shape[axis] as u32,
        pad: [0; 2],
    };
    let groups = rec.groups_1d((n * w) as u64)?;
    if let Some((status, id)) = rec.status.clone() {
        p.pad[0] = id;
        return rec.dispatch(
            Shader::Gather,
            "gather_rows_checked",
            vec![],
            bytemuck::bytes_of(&p),
            &[(1, pr.loc), (2, idx.loc), (3, out), (5, &status)],
            groups,
        );
    }
    rec.dispatch(
        Shader::Gather,
        "gather_rows",
        vec![],
        bytemuck::bytes_of(&p),
        &[(1, pr.loc), (2, idx.loc), (3, out)],
        groups,
    )
}

fn segment_sum(
    rec: &mut Recorder<'_>,
    ins: &[Arg<'_>],
    num_segments: usize,
    out: &Loc,
    n: usize,
) -> Result<()> {
    rec.clear(out);
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
        rows: num_segments as u32,
        pad: [0; 2],
    };
    let groups = rec.groups_1d(count as u64)?;
    rec.dispatch(
        Shader::Gather,
        "segment_sum",
        vec![],
        bytemuck::bytes_of(&p),
        &[(1, data.loc), (2, ids.loc), (4, out)],
        groups,
    )
}
