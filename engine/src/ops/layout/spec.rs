//! Strided-slice specs and reshape targets, resolved against shapes: the rules the
//! layout ops' shape inference, reference and kernels share.

use crate::error::{Error, Result};
use crate::tensor::shape_str;

/// A strided slice's spec as TF's `strided_slice` takes it, resolved per axis against
/// the input shape by [`StridedSpec::resolve`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StridedSpec {
    /// Start per axis (negative counts from the end).
    pub begin: Vec<i64>,
    /// End (exclusive) per axis (negative counts from the end).
    pub end: Vec<i64>,
    /// Step per axis (nonzero; negative walks backwards).
    pub strides: Vec<i64>,
    /// Bit `d`: ignore `begin[d]` (start at the first element in the walking direction).
    pub begin_mask: u64,
    /// Bit `d`: ignore `end[d]` (run to the last element in the walking direction).
    pub end_mask: u64,
    /// Bit `d`: take the single element `begin[d]` and drop the axis.
    pub shrink_axis_mask: u64,
}

/// One axis of a resolved strided slice: the first index, the step and the count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceAxis {
    /// First index taken.
    pub start: i64,
    /// Step between indices.
    pub step: i64,
    /// Indices taken.
    pub count: usize,
    /// The axis is dropped from the output (shrink).
    pub shrink: bool,
}

impl StridedSpec {
    /// The spec of `Slice { begin, size }` (`begin` non-negative, as TF's `Slice`).
    pub fn from_slice(begin: &[i64], size: &[i64]) -> StridedSpec {
        let mut end_mask = 0;
        let end = begin
            .iter()
            .zip(size)
            .enumerate()
            .map(|(d, (&b, &s))| {
                if s < 0 {
                    end_mask |= 1 << d;
                    0
                } else {
                    b + s
                }
            })
            .collect();
        StridedSpec {
            begin: begin.to_vec(),
            end,
            strides: vec![1; begin.len()],
            begin_mask: 0,
            end_mask,
            shrink_axis_mask: 0,
        }
    }

    /// Resolves the spec against `shape` (Python slicing rules; axes past the spec are
    /// taken whole). InvalidArgument for a zero step, a spec longer than the rank, or a
    /// shrunk index out of range.
    pub fn resolve(&self, shape: &[usize]) -> Result<Vec<SliceAxis>> {
        let k = self.begin.len();
        if self.end.len() != k || self.strides.len() != k {
            return Err(Error::invalid_argument(format!(
                "strided slice: begin, end and strides must have one entry per axis, got {}, {} and {}",
                k,
                self.end.len(),
                self.strides.len()
            )));
        }
        if k > shape.len() {
            return Err(Error::invalid_argument(format!(
                "strided slice of {k} axes on a tensor of rank {}",
                shape.len()
            )));
        }
        let mut out = Vec::with_capacity(shape.len());
        for (d, &n) in shape.iter().enumerate() {
            if d >= k {
                out.push(SliceAxis {
                    start: 0,
                    step: 1,
                    count: n,
                    shrink: false,
                });
                continue;
            }
            let n = n as i64;
            let s = self.strides[d];
            if s == 0 {
                return Err(Error::invalid_argument(format!(
                    "strided slice: stride of axis {d} is 0"
                )));
            }
            let bit = 1u64 << d;
            if self.shrink_axis_mask & bit != 0 {
                let b = self.begin[d];
                let i = if b < 0 { b + n } else { b };
                if i < 0 || i >= n {
                    return Err(Error::invalid_argument(format!(
                        "strided slice: index {b} of axis {d} is out of range for size {n}"
                    )));
                }
                out.push(SliceAxis {
                    start: i,
                    step: 1,
                    count: 1,
                    shrink: true,
                });
                continue;
            }
            let (lo, hi) = if s > 0 { (0, n) } else { (-1, n - 1) };
            let fix = |v: i64| (if v < 0 { v + n } else { v }).clamp(lo, hi);
            let start = if self.begin_mask & bit != 0 {
                if s > 0 { 0 } else { n - 1 }
            } else {
                fix(self.begin[d])
            };
            let end = if self.end_mask & bit != 0 {
                if s > 0 { n } else { -1 }
            } else {
                fix(self.end[d])
            };
            let span = if s > 0 { end - start } else { start - end };
            let count = (span.max(0) + s.abs() - 1) / s.abs();
            out.push(SliceAxis {
                start,
                step: s,
                count: count.max(0) as usize,
                shrink: false,
            });
        }
        Ok(out)
    }
}

pub(crate) fn known_numel(shape: &[i64]) -> Option<i64> {
    shape
        .iter()
        .try_fold(1i64, |acc, &d| if d < 0 { None } else { Some(acc * d) })
}

/// Resolves a reshape target (one `-1` inferred) against an input shape.
pub fn reshape_target(input: &[i64], target: &[i64]) -> Result<Vec<i64>> {
    let unknown = target.iter().filter(|&&d| d < 0).count();
    if unknown > 1 {
        return Err(Error::invalid_argument(format!(
            "Reshape: at most one dimension may be -1, got {}",
            shape_str(target)
        )));
    }
    let known: i64 = target.iter().filter(|&&d| d >= 0).product();
    match known_numel(input) {
        Some(n) => {
            if unknown == 1 {
                if known == 0 || n % known != 0 {
                    return Err(Error::invalid_argument(format!(
                        "Reshape: cannot reshape a tensor with {n} elements to {}",
                        shape_str(target)
                    )));
                }
                Ok(target
                    .iter()
                    .map(|&d| if d < 0 { n / known } else { d })
                    .collect())
            } else if known != n {
                Err(Error::invalid_argument(format!(
                    "Reshape: cannot reshape a tensor of shape {} ({n} elements) to {}",
                    shape_str(input),
                    shape_str(target)
                )))
            } else {
                Ok(target.to_vec())
            }
        }
        None => Ok(target.to_vec()),
    }
}

/// Resolves a strided slice against a shape that may hold unknown sizes (taken as
/// large); the second vector marks the axes whose size is unknown.
pub(super) fn resolve_unknown(
    name: &str,
    spec: &StridedSpec,
    x: &[i64],
) -> Result<(Vec<SliceAxis>, Vec<bool>)> {
    const BIG: usize = 1 << 30;
    let concrete: Vec<usize> = x
        .iter()
        .map(|&d| if d < 0 { BIG } else { d as usize })
        .collect();
    let axes = spec.resolve(&concrete).map_err(|e| {
        Error::invalid_argument(format!("{name}: {} (input {})", e.message, shape_str(x)))
    })?;
    let unknown = x.iter().map(|&d| d < 0).collect();
    Ok((axes, unknown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_inference() {
        assert_eq!(reshape_target(&[2, 6], &[-1, 3]).unwrap(), vec![4, 3]);
        assert_eq!(reshape_target(&[-1, 6], &[-1, 3]).unwrap(), vec![-1, 3]);
        assert!(reshape_target(&[2, 6], &[5, -1]).is_err());
        assert!(reshape_target(&[2, 6], &[-1, -1]).is_err());
    }
}
