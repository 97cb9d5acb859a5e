//! Binding ops to kernels: typed uniforms mirrored in WGSL, and one function that turns
//! a node of a plan into recorded [`Step`]s (dispatches and buffer copies).

mod matmul;
mod optim;
pub(crate) mod params;

pub(crate) use optim::{Bookkeeping, Update};
mod reduce;

use super::device::{Gpu, PipelineKey};
use crate::error::{Error, Result};
use crate::ops::Op;
use crate::reference::{broadcast_strides, strides};
use crate::runtime::shaders::Shader;
use crate::tensor::{DType, num_elements as numel};
use params::*;
use std::num::NonZeroU64;
use wgpu::util::DeviceExt;

/// Threads per workgroup of the 1-D kernels (`WG` in `common.wgsl`).
const WG: u64 = 256;
/// Maximum rank after merging dimensions (two `vec4<u32>` in the uniforms).
const MAX_RANK: usize = 8;
/// Elements one invocation reduces per pass (`reduce.wgsl`).
const REDUCE_CHUNK: usize = 4096;

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
        /// The node the kernel was recorded at and the kernel's entry point (traces).
        node: std::sync::Arc<str>,
        entry: &'static str,
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

/// 32-bit words per element of `d` on the device.
pub(crate) fn words(d: DType) -> usize {
    d.device_size() / 4
}

/// Unimplemented for a tensor of rank past the kernels' [`MAX_RANK`].
pub(crate) fn rank_ok(rank: usize) -> Result<()> {
    if rank > MAX_RANK {
        return Err(Error::unimplemented(format!(
            "tensors of rank {rank} (max {MAX_RANK})"
        )));
    }
    Ok(())
}

pub(crate) fn dt_code(d: DType) -> u32 {
    match d {
        DType::F32 => 0,
        DType::I32 => 1,
        DType::U32 => 2,
        DType::I64 => 3,
        DType::Bool => 4,
    }
}

pub(crate) fn pack(v: &[usize]) -> [u32; 8] {
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
    /// Copies that may run before everything else (of values nothing in the run changes
    /// before their reader): recorded first, so the dispatches share one compute pass.
    pub prologue: Vec<Step>,
    pub dispatches: usize,
    /// The node being recorded (named in traces).
    pub node: std::sync::Arc<str>,
    /// The plan's status words and the number (from 1) of the gather being recorded,
    /// when its indices are computed on the device and must be checked.
    pub status: Option<(Loc, u32)>,
}

impl<'g> Recorder<'g> {
    pub fn new(gpu: &'g Gpu) -> Self {
        Recorder {
            gpu,
            steps: Vec::new(),
            prologue: Vec::new(),
            dispatches: 0,
            node: std::sync::Arc::from(""),
            status: None,
        }
    }

    pub(crate) fn groups_1d(&self, n: u64) -> Result<[u32; 3]> {
        let max = u64::from(self.gpu.limits.max_compute_workgroups_per_dimension.max(1));
        if n == 0 {
            // Nothing to do: `dispatch` records no work for an empty grid.
            return Ok([0; 3]);
        }
        let wgs = n.div_ceil(WG);
        let x = wgs.min(max);
        let y = wgs.div_ceil(x);
        if y > max {
            return Err(Error::resource_exhausted(format!(
                "{n} elements need more than {max}x{max} workgroups"
            )));
        }
        Ok([x as u32, y as u32, 1])
    }

    pub(crate) fn dispatch(
        &mut self,
        shader: Shader,
        entry: &'static str,
        overrides: Vec<(&'static str, u32)>,
        params: &[u8],
        bindings: &[(u32, &Loc)],
        groups: [u32; 3],
    ) -> Result<()> {
        self.dispatch_with(shader, entry, overrides, params, bindings, &[], groups)
    }

    /// A uniform buffer holding `contents`.
    fn uniform(&self, label: &str, contents: &[u8]) -> wgpu::Buffer {
        self.gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    /// Records one dispatch: `params` at binding 0, storage `bindings`, and further
    /// `uniforms`.
    #[allow(clippy::too_many_arguments)]
    fn dispatch_with(
        &mut self,
        shader: Shader,
        entry: &'static str,
        overrides: Vec<(&'static str, u32)>,
        params: &[u8],
        bindings: &[(u32, &Loc)],
        uniforms: &[(u32, &wgpu::Buffer)],
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
        let ubuf = self.uniform(entry, params);
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: ubuf.as_entire_binding(),
        }];
        for &(binding, buf) in uniforms {
            entries.push(wgpu::BindGroupEntry {
                binding,
                resource: buf.as_entire_binding(),
            });
        }
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
        tracing::trace!(entry, overrides = ?key.overrides, ?groups, "kernel recorded");
        self.steps.push(Step::Dispatch {
            pipeline,
            bind_group,
            groups,
            node: std::sync::Arc::clone(&self.node),
            entry,
        });
        self.dispatches += 1;
        Ok(())
    }

    /// Records, ahead of all other work of the run, a copy of `size` bytes between
    /// 4-byte aligned offsets (see `prologue`).
    pub fn prologue_copy(
        &mut self,
        src: &wgpu::Buffer,
        src_offset: u64,
        dst: &wgpu::Buffer,
        dst_offset: u64,
        size: u64,
    ) {
        self.prologue.push(Step::Copy {
            src: src.clone(),
            src_offset,
            dst: dst.clone(),
            dst_offset,
            size,
        });
    }

    /// Records zeroing `out`.
    pub fn clear(&mut self, out: &Loc) {
        self.steps.push(Step::Clear {
            buf: out.buf.clone(),
            offset: out.offset,
            size: out.size,
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

    pub(crate) fn gather(
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
            groups,
        )
    }

    /// An elementwise function of one input (`elementwise.wgsl`'s `unary`, opcode `code`).
    pub(crate) fn elementwise_unary(&mut self, code: u32, x: &Arg, out: &Loc) -> Result<()> {
        let n = numel(x.shape);
        let p = EwParams::flat(n);
        let groups = self.groups_1d(n as u64)?;
        self.dispatch(
            Shader::Elementwise,
            "unary",
            vec![("OP", code), ("DT", dt_code(x.dtype))],
            bytemuck::bytes_of(&p),
            &[(1, x.loc), (3, out)],
            groups,
        )
    }

    /// An elementwise function of two broadcast inputs (`elementwise.wgsl`'s `binary`,
    /// opcode `code`: a binary op or a comparison).
    pub(crate) fn broadcast_binary(
        &mut self,
        code: u32,
        ins: &[Arg],
        out: &Loc,
        out_shape: &[usize],
    ) -> Result<()> {
        let n = numel(out_shape);
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
            groups,
        )
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
        op.family().record(self, ins, out, out_dtype, out_shape)
    }

    /// A scratch storage buffer of `size` bytes, written by copies.
    pub(crate) fn scratch(&self, label: &str, size: u64) -> Loc {
        let buf = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Loc::whole(buf, size)
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
