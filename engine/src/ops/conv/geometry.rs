//! Geometry of convolutions and pooling windows (NHWC), shared by shape inference, the
//! reference interpreter and the kernels, so the three agree on every output size and
//! padding.

use crate::error::{Error, Result};

/// How a window treats the borders (TF's `padding` attr).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Padding {
    /// Output size `ceil(in / stride)`, zeros (or nothing, for pooling) padded around,
    /// the extra one at the bottom/right when the total is odd.
    Same,
    /// Only windows inside the input: output size `ceil((in - (k - 1) * dilation) / stride)`.
    Valid,
}

impl Padding {
    /// TF's attr value.
    pub fn tf_name(self) -> &'static str {
        match self {
            Padding::Same => "SAME",
            Padding::Valid => "VALID",
        }
    }
}

/// A convolution's attrs: strides and dilations over (height, width).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv {
    /// Strides over height and width.
    pub strides: [usize; 2],
    /// Dilations over height and width.
    pub dilations: [usize; 2],
    /// Border handling.
    pub padding: Padding,
}

impl Conv {
    /// Strides and padding, no dilation.
    pub fn new(strides: [usize; 2], padding: Padding) -> Conv {
        Conv {
            strides,
            dilations: [1, 1],
            padding,
        }
    }

    /// The same with dilations (atrous convolution).
    pub fn with_dilations(self, dilations: [usize; 2]) -> Conv {
        Conv { dilations, ..self }
    }
}

/// A pooling window's attrs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pool {
    /// Window height and width.
    pub ksize: [usize; 2],
    /// Strides over height and width.
    pub strides: [usize; 2],
    /// Border handling.
    pub padding: Padding,
}

impl Pool {
    /// A `ksize` window moved by `strides`.
    pub fn new(ksize: [usize; 2], strides: [usize; 2], padding: Padding) -> Pool {
        Pool {
            ksize,
            strides,
            padding,
        }
    }
}

/// One spatial axis of a window: output size and the padding before the first input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Axis {
    /// Output size.
    pub out: usize,
    /// Padding before the input (top or left).
    pub pad: usize,
}

/// The output size and leading padding of a window of `k` taps, `dilation` apart, moved
/// by `stride` over `input` elements; InvalidArgument when no window fits (VALID).
pub fn axis(
    input: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    padding: Padding,
) -> Result<Axis> {
    if k == 0 || stride == 0 || dilation == 0 {
        return Err(Error::invalid_argument(format!(
            "window size {k}, stride {stride} and dilation {dilation} must be positive"
        )));
    }
    let span = (k - 1) * dilation + 1;
    match padding {
        Padding::Same => {
            let out = input.div_ceil(stride);
            let total = ((out.max(1) - 1) * stride + span).saturating_sub(input);
            Ok(Axis {
                out,
                pad: total / 2,
            })
        }
        Padding::Valid => {
            if span > input {
                return Err(Error::invalid_argument(format!(
                    "a window of {span} (size {k}, dilation {dilation}) does not fit in {input} elements with VALID padding"
                )));
            }
            Ok(Axis {
                out: (input - span) / stride + 1,
                pad: 0,
            })
        }
    }
}

/// A window over the two spatial axes of an NHWC tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Batch, input height, input width.
    pub n: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Window height and width.
    pub k: [usize; 2],
    /// Strides.
    pub s: [usize; 2],
    /// Dilations.
    pub d: [usize; 2],
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// Padding before the first row and column.
    pub pad: [usize; 2],
}

impl Window {
    /// The window of `k` taps with `strides`, `dilations` and `padding` over the spatial
    /// axes of NHWC `shape`.
    pub fn new(
        shape: &[usize],
        k: [usize; 2],
        strides: [usize; 2],
        dilations: [usize; 2],
        padding: Padding,
    ) -> Result<Window> {
        let ah = axis(shape[1], k[0], strides[0], dilations[0], padding)?;
        let aw = axis(shape[2], k[1], strides[1], dilations[1], padding)?;
        Ok(Window {
            n: shape[0],
            h: shape[1],
            w: shape[2],
            k,
            s: strides,
            d: dilations,
            oh: ah.out,
            ow: aw.out,
            pad: [ah.pad, aw.pad],
        })
    }

    /// The input row and column of tap `(kh, kw)` of output `(oh, ow)`, `None` in the
    /// padding.
    pub fn tap(&self, oh: usize, ow: usize, kh: usize, kw: usize) -> Option<(usize, usize)> {
        let ih = (oh * self.s[0] + kh * self.d[0]).checked_sub(self.pad[0])?;
        let iw = (ow * self.s[1] + kw * self.d[1]).checked_sub(self.pad[1])?;
        (ih < self.h && iw < self.w).then_some((ih, iw))
    }
}
