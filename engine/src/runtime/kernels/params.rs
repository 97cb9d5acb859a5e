//! Kernel parameters: `#[repr(C)]` uniforms mirrored field for field by the `Params`
//! structs of the WGSL files.

use bytemuck::{Pod, Zeroable};

/// Mirrors `Params` in `elementwise.wgsl` and `layout.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct EwParams {
    pub n: u32,
    pub rank: u32,
    pub scale: f32,
    pub extra: u32,
    pub shape: [u32; 8],
    pub sa: [u32; 8],
    pub sb: [u32; 8],
}

/// Mirrors `Params` in `reduce.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct ReduceParams {
    pub n_out: u32,
    pub rank_out: u32,
    pub n_red: u32,
    pub rank_red: u32,
    pub scale: f32,
    pub chunk: u32,
    pub chunks: u32,
    pub pad: u32,
    pub out_shape: [u32; 8],
    pub out_st: [u32; 8],
    pub red_shape: [u32; 8],
    pub red_st: [u32; 8],
}

/// Mirrors `Params` in `matmul.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct MatmulParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub batch: u32,
    pub a_rs: u32,
    pub a_ks: u32,
    pub b_ks: u32,
    pub b_cs: u32,
    pub a_bs: u32,
    pub b_bs: u32,
    pub c_bs: u32,
    pub pad: u32,
}

/// Mirrors `Params` in `softmax.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct RowParams {
    pub rows: u32,
    pub cols: u32,
    pub sparse: u32,
    pub mean: u32,
}

/// Mirrors `Params` in `optim.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct OptParams {
    pub n: u32,
    pub flag: u32,
    pub pad: [u32; 2],
    pub h: [f32; 4],
    /// Word offsets in the book of beta1_power, beta2_power, the step; bookkeeping bits.
    pub book: [u32; 4],
    /// The step increment, low word first.
    pub inc: [u32; 2],
    pub pad2: [u32; 2],
}

/// Mirrors `Params` in `state.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct CountParams {
    pub n: u32,
    pub pad: [u32; 3],
}

impl EwParams {
    /// Parameters of a same-shape elementwise kernel over `n` elements.
    pub(crate) fn flat(n: usize) -> EwParams {
        EwParams {
            n: n as u32,
            rank: 1,
            scale: 1.0,
            extra: 0,
            shape: [0; 8],
            sa: [0; 8],
            sb: [0; 8],
        }
    }
}
