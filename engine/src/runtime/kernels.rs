//! Binding ops to kernels: typed uniforms mirrored in WGSL, and one function that turns
//! a node of a plan into recorded [`Step`]s (dispatches and buffer copies).

use super::device::{Gpu, PipelineKey};
use super::shaders::Shader;
use crate::error::{Error, Result};
use crate::ops::{AssignOp, Op, ReduceOp};
use crate::reference::{broadcast_strides, strides};
use crate::tensor::DType;
use bytemuck::{Pod, Zeroable};
use std::num::NonZeroU64;
use wgpu::util::DeviceExt;

/// Threads per workgroup of the 1-D kernels (`WG` in `common.wgsl`).
const WG: u64 = 256;
/// Maximum rank after merging dimensions (two `vec4<u32>` in the uniforms).
const MAX_RANK: usize = 8;
/// Elements one invocation reduces per pass (`reduce.wgsl`).
const REDUCE_CHUNK: usize = 4096;

/// Mirrors `Params` in `elementwise.wgsl` and `layout.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct EwParams {
    n: u32,
    rank: u32,
    scale: f32,
    extra: u32,
    shape: [u32; 8],
    sa: [u32; 8],
    sb: [u32; 8],
}

/// Mirrors `Params` in `reduce.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ReduceParams {
    n_out: u32,
    rank_out: u32,
    n_red: u32,
    rank_red: u32,
    scale: f32,
    chunk: u32,
    chunks: u32,
    pad: u32,
    out_shape: [u32; 8],
    out_st: [u32; 8],
    red_shape: [u32; 8],
    red_st: [u32; 8],
}

/// Mirrors `Params` in `matmul.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    a_rs: u32,
    a_ks: u32,
    b_ks: u32,
    b_cs: u32,
    a_bs: u32,
    b_bs: u32,
    c_bs: u32,
    pad: u32,
}

/// Mirrors `Params` in `softmax.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RowParams {
    rows: u32,
    cols: u32,
    sparse: u32,
    mean: u32,
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

/// Mirrors `Params` in `optim.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct OptParams {
    n: u32,
    flag: u32,
    pad: [u32; 2],
    h: [f32; 4],
}

/// Mirrors `Params` in `state.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct CountParams {
    n: u32,
    pad: [u32; 3],
}

/// A device buffer region holding one tensor.
#[derive(Clone, Debug)]
pub(crate) struct Loc {
    pub buf: wgpu::Buffer,
    /// Byte offset of the tensor in the buffer (a multiple of the device's storage
    /// offset alignment for arena views, 0 otherwise).
    pub offset: u64,
    /// Bytes of the tensor (at least 4).
    pub size: u64,
}

impl Loc {
    /// A whole buffer holding `size` bytes from its start.
    pub fn whole(buf: wgpu::Buffer, size: u64) -> Loc {
        Loc {
            buf,
            offset: 0,
            size: size.max(4),
        }
    }
}

/// One recorded unit of device work.
pub(crate) enum Step {
    Dispatch {
        pipeline: wgpu::ComputePipeline,
        bind_group: wgpu::BindGroup,
        groups: [u32; 3],
    },
    Copy {
        src: wgpu::Buffer,
        src_offset: u64,
        dst: wgpu::Buffer,
        dst_offset: u64,
        size: u64,
    },
    Clear {
        buf: wgpu::Buffer,
        offset: u64,
        size: u64,
    },
}

/// An input or output of a node as the kernels see it.
pub(crate) struct Arg<'a> {
    pub loc: &'a Loc,
    pub dtype: DType,
    pub shape: &'a [usize],
}

fn dt_code(d: DType) -> u32 {
    match d {
        DType::F32 => 0,
        DType::I32 => 1,
        DType::U32 => 2,
        DType::I64 => 3,
        DType::Bool => 4,
    }
}

fn numel(s: &[usize]) -> usize {
    s.iter().product()
}

fn pack(v: &[usize]) -> [u32; 8] {
    let mut out = [1u32; 8];
    for (o, &x) in out.iter_mut().zip(v) {
        *o = x as u32;
    }
    out
}

/// Merges adjacent dimensions that are contiguous for every operand and drops size-1
/// dimensions; returns (shape, strides per operand).
fn collapse(shape: &[usize], operands: &[Vec<usize>]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut s: Vec<usize> = Vec::new();
    let mut st: Vec<Vec<usize>> = vec![Vec::new(); operands.len()];
    for d in 0..shape.len() {
        if shape[d] == 1 {
            continue;
        }
        let mergeable = !s.is_empty()
            && operands
                .iter()
                .enumerate()
                .all(|(k, o)| st[k][st[k].len() - 1] == o[d] * shape[d]);
        if mergeable {
            let last = s.len() - 1;
            s[last] *= shape[d];
            for (k, o) in operands.iter().enumerate() {
                let l = st[k].len() - 1;
                st[k][l] = o[d];
            }
        } else {
            s.push(shape[d]);
            for (k, o) in operands.iter().enumerate() {
                st[k].push(o[d]);
            }
        }
    }
    if s.is_empty() {
        s.push(1);
        for v in &mut st {
            v.push(0);
        }
    }
    (s, st)
}

/// Records kernels for one plan.
pub(crate) struct Recorder<'g> {
    pub gpu: &'g Gpu,
    pub steps: Vec<Step>,
    pub dispatches: usize,
}

impl<'g> Recorder<'g> {
    pub fn new(gpu: &'g Gpu) -> Self {
        Recorder {
            gpu,
            steps: Vec::new(),
            dispatches: 0,
        }
    }

    fn groups_1d(&self, n: u64) -> Result<[u32; 3]> {
        let max = u64::from(self.gpu.limits.max_compute_workgroups_per_dimension.max(1));
        let wgs = n.div_ceil(WG).max(1);
        let x = wgs.min(max);
        let y = wgs.div_ceil(x);
        if y > max {
            return Err(Error::resource_exhausted(format!(
                "{n} elements need more than {max}x{max} workgroups"
            )));
        }
        Ok([x as u32, y as u32, 1])
    }

    fn dispatch(
        &mut self,
        shader: Shader,
        entry: &'static str,
        overrides: Vec<(&'static str, u32)>,
        params: &[u8],
        bindings: &[(u32, &Loc)],
        groups: [u32; 3],
    ) -> Result<()> {
        if groups.contains(&0) {
            return Ok(());
        }
        let key = PipelineKey {
            shader,
            entry,
            overrides,
        };
        let pipeline = self.gpu.pipeline(&key)?;
        let ubuf = self
            .gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(entry),
                contents: params,
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: ubuf.as_entire_binding(),
        }];
        for &(binding, loc) in bindings {
            entries.push(wgpu::BindGroupEntry {
                binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &loc.buf,
                    offset: loc.offset,
                    size: NonZeroU64::new(loc.size.max(4)),
                }),
            });
        }
        let layout = pipeline.get_bind_group_layout(0);
        let bind_group = self
            .gpu
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(entry),
                layout: &layout,
                entries: &entries,
            });
        if std::env::var_os("WGTRAIN_TRACE_PLAN").is_some() {
            eprintln!("dispatch {entry} {:?} groups {groups:?}", key.overrides);
        }
        self.steps.push(Step::Dispatch {
            pipeline,
            bind_group,
            groups,
        });
        self.dispatches += 1;
        Ok(())
    }

    /// Records a copy of `size` bytes between arbitrary (4-byte aligned) offsets.
    pub fn copy_bytes(
        &mut self,
        src: &wgpu::Buffer,
        src_offset: u64,
        dst: &wgpu::Buffer,
        dst_offset: u64,
        size: u64,
    ) {
        self.steps.push(Step::Copy {
            src: src.clone(),
            src_offset,
            dst: dst.clone(),
            dst_offset,
            size,
        });
    }

    /// Records a buffer copy.
    pub fn copy(&mut self, src: &Loc, dst: &Loc) {
        let size = src.size.min(dst.size);
        let same = src.buf == dst.buf && src.offset == dst.offset;
        if size > 0 && !same {
            self.steps.push(Step::Copy {
                src: src.buf.clone(),
                src_offset: src.offset,
                dst: dst.buf.clone(),
                dst_offset: dst.offset,
                size,
            });
        }
    }

    fn gather(
        &mut self,
        x: &Arg,
        out: &Loc,
        out_shape: &[usize],
        in_strides: Vec<usize>,
        scale: Option<f32>,
    ) -> Result<()> {
        let (mut shape, mut st) = (out_shape.to_vec(), in_strides);
        if x.dtype == DType::I64 {
            // Two words per element: gather words with an extra innermost dimension.
            st = st.iter().map(|s| s * 2).collect();
            shape.push(2);
            st.push(1);
        }
        let n = numel(&shape);
        let out_st = strides(&shape);
        let (cs, cst) = collapse(&shape, &[st, out_st]);
        if cs.len() > MAX_RANK {
            return Err(Error::unimplemented(format!(
                "tensors of rank {} after merging dimensions (max {MAX_RANK})",
                cs.len()
            )));
        }
        let p = EwParams {
            n: n as u32,
            rank: cs.len() as u32,
            scale: scale.unwrap_or(1.0),
            extra: 0,
            shape: pack(&cs),
            sa: pack(&cst[0]),
            sb: [0; 8],
        };
        let groups = self.groups_1d(n as u64)?;
        self.dispatch(
            Shader::Layout,
            "gather",
            vec![("SCALE", u32::from(scale.is_some()))],
            bytemuck::bytes_of(&p),
            &[(1, x.loc), (3, out)],
            if n == 0 { [0, 0, 0] } else { groups },
        )
    }

    fn reduce(&mut self, x: &Arg, out: &Loc, axes: &[usize], code: u32) -> Result<()> {
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
        let scale = 1.0 / n_red.max(1) as f32;
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
            if n_out == 0 { [0; 3] } else { groups },
        )
    }

    /// Records one optimizer update of `n` parameters: `var` and its `slots` (arena
    /// views or whole arenas), the gradient, the learning rate and Adam's beta powers.
    ///
    /// With `finish` (FINISH bits of `optim.wgsl`, scratch buffer) the fused entry point
    /// also computes the step's scalar bookkeeping into the scratch buffer.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        op: &Op,
        var: &Loc,
        slots: &[&Loc],
        grad: &Loc,
        lr: &Loc,
        powers: Option<(&Loc, &Loc)>,
        n: usize,
        finish: Option<(u32, &Loc)>,
    ) -> Result<()> {
        let groups = if n == 0 {
            [0; 3]
        } else {
            self.groups_1d(n as u64)?
        };
        let (entry, flag, h) = match op {
            Op::ApplyGradientDescent => ("sgd", 0, [0.0; 4]),
            Op::ApplyMomentum { momentum, nesterov } => {
                ("momentum", u32::from(*nesterov), [*momentum, 0.0, 0.0, 0.0])
            }
            Op::ApplyAdam {
                beta1,
                beta2,
                epsilon,
                weight_decay,
            } => ("adam", 0, [*beta1, *beta2, *epsilon, *weight_decay]),
            Op::ApplyRmsProp {
                rho,
                momentum,
                epsilon,
            } => ("rmsprop", 0, [*rho, *momentum, *epsilon, 0.0]),
            _ => {
                return Err(Error::internal(format!(
                    "{} is not an optimizer update",
                    op.tf_name()
                )));
            }
        };
        let p = OptParams {
            n: n as u32,
            flag,
            pad: [0; 2],
            h,
        };
        let mut bindings: Vec<(u32, &Loc)> = vec![(1, var), (4, grad), (5, lr)];
        for (k, s) in slots.iter().enumerate() {
            bindings.push((2 + k as u32, s));
        }
        if let Some((b1p, b2p)) = powers {
            bindings.push((6, b1p));
            bindings.push((7, b2p));
        }
        match finish {
            None => self.dispatch(
                Shader::Optim,
                entry,
                vec![],
                bytemuck::bytes_of(&p),
                &bindings,
                groups,
            ),
            Some((bits, scratch)) => {
                bindings.push((8, scratch));
                let fused = match entry {
                    "sgd" => "sgd_fused",
                    "momentum" => "momentum_fused",
                    "adam" => "adam_fused",
                    _ => "rmsprop_fused",
                };
                // Invocation 0 must exist even for an empty update.
                let groups = if n == 0 { [1, 1, 1] } else { groups };
                self.dispatch(
                    Shader::Optim,
                    fused,
                    vec![("FINISH", bits)],
                    bytemuck::bytes_of(&p),
                    &bindings,
                    groups,
                )
            }
        }
    }

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
        let (ar, ac) = (a.shape[r - 2], a.shape[r - 1]);
        let (br, bc) = (b.shape[r - 2], b.shape[r - 1]);
        let (m, nn) = (out_shape[r - 2], out_shape[r - 1]);
        let k = if transpose_a { ar } else { ac };
        let batch = numel(&out_shape[..r - 2]);
        if m * nn * batch == 0 {
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

    /// Records the kernels of one node: `ins` its inputs, `out` its output.
    pub fn node(
        &mut self,
        op: &Op,
        ins: &[Arg],
        out: &Loc,
        out_dtype: DType,
        out_shape: &[usize],
    ) -> Result<()> {
        let n = numel(out_shape);
        match op {
            Op::Placeholder
            | Op::Const(_)
            | Op::Variable { .. }
            | Op::InitialValue { .. }
            | Op::NoOp => Ok(()),
            Op::Reshape(_) | Op::ReshapeLike => Ok(()),
            Op::Identity => {
                self.copy(ins[0].loc, out);
                Ok(())
            }
            Op::Unary(u) => {
                let p = EwParams {
                    n: n as u32,
                    rank: 1,
                    scale: 1.0,
                    extra: 0,
                    shape: [0; 8],
                    sa: [0; 8],
                    sb: [0; 8],
                };
                let groups = self.groups_1d(n as u64)?;
                self.dispatch(
                    Shader::Elementwise,
                    "unary",
                    vec![("OP", u.code()), ("DT", dt_code(ins[0].dtype))],
                    bytemuck::bytes_of(&p),
                    &[(1, ins[0].loc), (3, out)],
                    if n == 0 { [0; 3] } else { groups },
                )
            }
            Op::Binary(_) | Op::Compare(_) | Op::BiasAdd => {
                let code = match op {
                    Op::Binary(b) => b.code(),
                    Op::Compare(c) => c.code(),
                    _ => 0,
                };
                let sa = broadcast_strides(ins[0].shape, out_shape);
                let sb = broadcast_strides(ins[1].shape, out_shape);
                let (cs, cst) = collapse(out_shape, &[sa, sb]);
                if cs.len() > MAX_RANK {
                    return Err(Error::unimplemented(
                        "broadcast of rank > 8 after merging dimensions",
                    ));
                }
                let p = EwParams {
                    n: n as u32,
                    rank: cs.len() as u32,
                    scale: 1.0,
                    extra: 0,
                    shape: pack(&cs),
                    sa: pack(&cst[0]),
                    sb: pack(&cst[1]),
                };
                let groups = self.groups_1d(n as u64)?;
                self.dispatch(
                    Shader::Elementwise,
                    "binary",
                    vec![("OP", code), ("DT", dt_code(ins[0].dtype))],
                    bytemuck::bytes_of(&p),
                    &[(1, ins[0].loc), (2, ins[1].loc), (3, out)],
                    if n == 0 { [0; 3] } else { groups },
                )
            }
            Op::Cast(to) => {
                if ins[0].dtype == *to {
                    self.copy(ins[0].loc, out);
                    return Ok(());
                }
                let p = EwParams {
                    n: n as u32,
                    rank: 1,
                    scale: 1.0,
                    extra: 0,
                    shape: [0; 8],
                    sa: [0; 8],
                    sb: [0; 8],
                };
                let groups = self.groups_1d(n as u64)?;
                self.dispatch(
                    Shader::Elementwise,
                    "convert",
                    vec![("SRC", dt_code(ins[0].dtype)), ("DST", dt_code(*to))],
                    bytemuck::bytes_of(&p),
                    &[(1, ins[0].loc), (3, out)],
                    if n == 0 { [0; 3] } else { groups },
                )
            }
            Op::MatMul {
                transpose_a,
                transpose_b,
            } => self.matmul(
                &ins[0],
                &ins[1],
                *transpose_a,
                *transpose_b,
                out,
                out_shape,
                None,
            ),
            Op::Reduce { op: r, axes, .. } => self.reduce(&ins[0], out, axes, r.code()),
            Op::SumLike => {
                let x = &ins[0];
                let like = ins[1].shape;
                let off = x.shape.len() - like.len();
                let axes: Vec<usize> = (0..x.shape.len())
                    .filter(|&d| d < off || (like[d - off] == 1 && x.shape[d] != 1))
                    .collect();
                self.reduce(x, out, &axes, 0)
            }
            Op::ArgMax { axis } => {
                let x = &ins[0];
                let outer = numel(&x.shape[..*axis]);
                let len = x.shape[*axis];
                let inner = numel(&x.shape[axis + 1..]);
                let mut p = ReduceParams::zeroed();
                p.n_out = (outer * inner) as u32;
                p.n_red = len as u32;
                p.out_shape = [outer as u32, inner.max(1) as u32, 1, 1, 1, 1, 1, 1];
                let groups = self.groups_1d((outer * inner) as u64)?;
                self.dispatch(
                    Shader::Reduce,
                    "argmax",
                    vec![("DT", dt_code(x.dtype))],
                    bytemuck::bytes_of(&p),
                    &[(1, x.loc), (3, out)],
                    if outer * inner == 0 || len == 0 {
                        [0; 3]
                    } else {
                        groups
                    },
                )
            }
            Op::Transpose(perm) => {
                let xs = strides(ins[0].shape);
                let st: Vec<usize> = perm.iter().map(|&p| xs[p]).collect();
                self.gather(&ins[0], out, out_shape, st, None)
            }
            Op::BroadcastLike { mean } => {
                let st = broadcast_strides(ins[0].shape, out_shape);
                let scale = mean.then(|| numel(ins[0].shape) as f32 / n.max(1) as f32);
                self.gather(&ins[0], out, out_shape, st, scale)
            }
            Op::OneHot {
                depth,
                on_value,
                off_value,
            } => {
                let p = OneHotParams {
                    n: n as u32,
                    depth: *depth as u32,
                    on_value: *on_value,
                    off_value: *off_value,
                };
                let groups = self.groups_1d(n as u64)?;
                self.dispatch(
                    Shader::Index,
                    "one_hot",
                    vec![],
                    bytemuck::bytes_of(&p),
                    &[(1, ins[0].loc), (3, out)],
                    if n == 0 { [0; 3] } else { groups },
                )
            }
            Op::Softmax | Op::LogSoftmax => {
                let cols = *ins[0].shape.last().unwrap_or(&1);
                let rows = n.checked_div(cols).unwrap_or(0);
                let p = RowParams {
                    rows: rows as u32,
                    cols: cols as u32,
                    sparse: 0,
                    mean: 0,
                };
                let groups = self.groups_1d(rows as u64)?;
                self.dispatch(
                    Shader::Softmax,
                    "softmax",
                    vec![("OP", u32::from(matches!(op, Op::LogSoftmax)))],
                    bytemuck::bytes_of(&p),
                    &[(1, ins[0].loc), (3, out)],
                    if rows == 0 { [0; 3] } else { groups },
                )
            }
            Op::SoftmaxXent | Op::SparseSoftmaxXent => {
                let (rows, cols) = (ins[0].shape[0], ins[0].shape[1]);
                if cols == 0 {
                    return Err(Error::invalid_argument("cross-entropy over zero classes"));
                }
                let p = RowParams {
                    rows: rows as u32,
                    cols: cols as u32,
                    sparse: 0,
                    mean: 0,
                };
                let entry = if matches!(op, Op::SoftmaxXent) {
                    "xent"
                } else {
                    "sparse_xent"
                };
                let groups = self.groups_1d(rows as u64)?;
                self.dispatch(
                    Shader::Softmax,
                    entry,
                    vec![],
                    bytemuck::bytes_of(&p),
                    &[(1, ins[0].loc), (2, ins[1].loc), (3, out)],
                    if rows == 0 { [0; 3] } else { groups },
                )
            }
            Op::XentGrad { sparse, mean } => {
                let (rows, cols) = (ins[0].shape[0], ins[0].shape[1]);
                let p = RowParams {
                    rows: rows as u32,
                    cols: cols as u32,
                    sparse: u32::from(*sparse),
                    mean: u32::from(*mean),
                };
                let groups = self.groups_1d(rows as u64)?;
                self.dispatch(
                    Shader::Softmax,
                    "xent_grad",
                    vec![],
                    bytemuck::bytes_of(&p),
                    &[(1, ins[0].loc), (2, ins[1].loc), (3, out), (4, ins[2].loc)],
                    if rows * cols == 0 { [0; 3] } else { groups },
                )
            }
            Op::Assign(AssignOp::Assign) => {
                self.copy(ins[1].loc, ins[0].loc);
                Ok(())
            }
            Op::Assign(kind) => {
                // A value in the variable's own buffer (an arena) cannot be bound for
                // reading while the variable is bound for writing: copy it out first.
                let value = if ins[1].loc.buf == ins[0].loc.buf {
                    let temp = Loc::whole(
                        self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                            label: Some("assign value"),
                            size: ins[1].loc.size,
                            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                            mapped_at_creation: false,
                        }),
                        ins[1].loc.size,
                    );
                    self.copy(ins[1].loc, &temp);
                    temp
                } else {
                    ins[1].loc.clone()
                };
                let p = CountParams {
                    n: n as u32,
                    pad: [0; 3],
                };
                let groups = self.groups_1d(n as u64)?;
                self.dispatch(
                    Shader::State,
                    "assign_update",
                    vec![
                        ("OP", u32::from(*kind == AssignOp::Sub)),
                        ("DT", dt_code(out_dtype)),
                    ],
                    bytemuck::bytes_of(&p),
                    &[(1, ins[0].loc), (2, &value)],
                    if n == 0 { [0; 3] } else { groups },
                )
            }
            op @ (Op::ApplyGradientDescent
            | Op::ApplyMomentum { .. }
            | Op::ApplyAdam { .. }
            | Op::ApplyRmsProp { .. }) => {
                let slots: Vec<&Loc> = op.mutated_slots().iter().map(|&k| ins[k].loc).collect();
                let (lr, grad) = match op {
                    Op::ApplyGradientDescent => (ins[1].loc, ins[2].loc),
                    Op::ApplyMomentum { .. } => (ins[2].loc, ins[3].loc),
                    Op::ApplyAdam { .. } => (ins[5].loc, ins[6].loc),
                    _ => (ins[3].loc, ins[4].loc),
                };
                let powers = matches!(op, Op::ApplyAdam { .. }).then(|| (ins[3].loc, ins[4].loc));
                self.apply(op, ins[0].loc, &slots, grad, lr, powers, n, None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapse_merges_contiguous_dims() {
        let shape = [2, 3, 4];
        let (s, st) = collapse(&shape, &[strides(&shape), strides(&shape)]);
        assert_eq!(s, vec![24]);
        assert_eq!(st, vec![vec![1], vec![1]]);
        // Broadcasting a row over a matrix keeps two dims.
        let (s, st) = collapse(&[5, 7], &[vec![7, 1], vec![0, 1]]);
        assert_eq!(s, vec![5, 7]);
        assert_eq!(st[1], vec![0, 1]);
        let (s, _) = collapse(&[1, 1], &[vec![0, 0]]);
        assert_eq!(s, vec![1]);
    }
}
