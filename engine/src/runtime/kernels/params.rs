//! Kernel parameters: `#[repr(C)]` uniforms mirrored field for field by the `Params`
//! structs of the WGSL files.

use bytemuck::{Pod, Zeroable};

/// Mirrors `Params` in `elementwise.wgsl` and `layout.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct EwParams {
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

/// Mirrors `Params` in `index.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct OneHotParams {
    pub n: u32,
    pub depth: u32,
    pub on_value: f32,
    pub off_value: f32,
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
pub(super) struct CountParams {
    pub n: u32,
    pub pad: [u32; 3],
}

impl EwParams {
    /// Parameters of a same-shape elementwise kernel over `n` elements.
    pub(super) fn flat(n: usize) -> EwParams {
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

/// Mirrors `Remap` in `remap.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct RemapParams {
    pub n: u32,
    pub rank: u32,
    pub words: u32,
    pub fill: u32,
    pub fill_hi: u32,
    pub pad: [u32; 3],
    pub out_shape: [u32; 8],
    pub in_shape: [u32; 8],
    pub a: [i32; 8],
    pub b: [i32; 8],
    pub cnt: [u32; 8],
}

/// Mirrors `Select` in `remap.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct SelectParams {
    pub n: u32,
    pub rank: u32,
    pub words: u32,
    pub pad: u32,
    pub shape: [u32; 8],
    pub sc: [u32; 8],
    pub sa: [u32; 8],
    pub sb: [u32; 8],
}

/// Mirrors `Rows` in `gather.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct RowsParams {
    pub n: u32,
    pub words: u32,
    pub outer: u32,
    pub count: u32,
    pub inner: u32,
    pub rows: u32,
    pub pad: [u32; 2],
}

/// Mirrors `Drop` in `random.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct DropParams {
    pub n: u32,
    pub rate: f32,
    pub scale: f32,
    pub pad: u32,
    pub key: [u32; 2],
    pub pad2: [u32; 2],
}
