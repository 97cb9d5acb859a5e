//! Dtype and shape inference: the same rules check a node when it is added (shapes may
//! hold `-1`) and resolve concrete shapes when a run is planned.

use super::{AssignOp, Family, Op};
use crate::error::{Error, Result};
use crate::tensor::{DType, shape_str};

/// A node's dtype and shape as inferred; `None` dtype for ops without a value (NoOp).
#[derive(Clone, Debug, PartialEq)]
pub struct Inferred {
    /// The element type.
    pub dtype: DType,
    /// The shape, `-1` for a dimension unknown until run time.
    pub shape: Vec<i64>,
}

/// The inputs of a node being inferred, with the checks every family's rule makes;
/// errors are InvalidArgument prefixed with the op's TF name.
pub(crate) struct Check<'a> {
    name: &'static str,
    /// The inputs' dtypes.
    pub dtypes: &'a [DType],
    /// The inputs' shapes (`-1` unknown).
    pub shapes: &'a [Vec<i64>],
}

impl<'a> Check<'a> {
    pub(crate) fn new(name: &'static str, dtypes: &'a [DType], shapes: &'a [Vec<i64>]) -> Self {
        Check {
            name,
            dtypes,
            shapes,
        }
    }

    /// InvalidArgument `"<op>: <msg>"`.
    pub(crate) fn err(&self, msg: String) -> Error {
        Error::invalid_argument(format!("{}: {msg}", self.name))
    }

    /// Exactly `n` inputs.
    pub(crate) fn arity(&self, n: usize) -> Result<()> {
        if self.dtypes.len() != n {
            return Err(self.err(format!("expects {n} inputs, got {}", self.dtypes.len())));
        }
        Ok(())
    }

    /// Input `i` is float32.
    pub(crate) fn float_only(&self, i: usize) -> Result<()> {
        if self.dtypes[i] != DType::F32 {
            return Err(self.err(format!(
                "input {i} has dtype {}; only float32 is supported",
                self.dtypes[i]
            )));
        }
        Ok(())
    }

    /// Inputs `a` and `b` have the same dtype.
    pub(crate) fn same_dtype(&self, a: usize, b: usize) -> Result<()> {
        if self.dtypes[a] != self.dtypes[b] {
            return Err(self.err(format!(
                "inputs must have the same dtype, got {} and {}",
                self.dtypes[a], self.dtypes[b]
            )));
        }
        Ok(())
    }

    /// Input `i` (called `what`) is rank 4.
    pub(crate) fn rank4(&self, i: usize, what: &str) -> Result<()> {
        let s = &self.shapes[i];
        if s.len() != 4 {
            return Err(self.err(format!(
                "{what} must be rank 4 (NHWC / HWIO), got shape {}",
                shape_str(s)
            )));
        }
        Ok(())
    }
}

fn err(op: &Op, msg: String) -> Error {
    Error::invalid_argument(format!("{}: {msg}", op.tf_name()))
}

/// NumPy broadcasting of two shapes; `-1` (unknown) matches anything.
pub fn broadcast_shapes(a: &[i64], b: &[i64]) -> Option<Vec<i64>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = if da == db {
            da
        } else if da == 1 {
            db
        } else if db == 1 {
            da
        } else if da < 0 {
            db
        } else if db < 0 {
            da
        } else {
            return None;
        };
    }
    Some(out)
}

fn known_numel(shape: &[i64]) -> Option<i64> {
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
fn resolve_unknown(
    op: &Op,
    spec: &super::StridedSpec,
    x: &[i64],
) -> Result<(Vec<super::SliceAxis>, Vec<bool>)> {
    const BIG: usize = 1 << 30;
    let concrete: Vec<usize> = x
        .iter()
        .map(|&d| if d < 0 { BIG } else { d as usize })
        .collect();
    let axes = spec
        .resolve(&concrete)
        .map_err(|e| err(op, format!("{} (input {})", e.message, shape_str(x))))?;
    let unknown = x.iter().map(|&d| d < 0).collect();
    Ok((axes, unknown))
}

/// Infers the dtype and shape of `op` applied to inputs of `dtypes` and `shapes`.
///
/// Shapes may contain `-1`; at plan time they are all known. An error is
/// InvalidArgument naming the op and the shapes that disagree.
pub fn infer(op: &Op, dtypes: &[DType], shapes: &[Vec<i64>]) -> Result<Inferred> {
    let arity = |n: usize| -> Result<()> {
        if dtypes.len() != n {
            return Err(err(op, format!("expects {n} inputs, got {}", dtypes.len())));
        }
        Ok(())
    };
    let same_dtype = |a: usize, b: usize| -> Result<()> {
        if dtypes[a] != dtypes[b] {
            return Err(err(
                op,
                format!(
                    "inputs must have the same dtype, got {} and {}",
                    dtypes[a], dtypes[b]
                ),
            ));
        }
        Ok(())
    };
    let float_only = |i: usize| -> Result<()> {
        if dtypes[i] != DType::F32 {
            return Err(err(
                op,
                format!(
                    "input {i} has dtype {}; only float32 is supported",
                    dtypes[i]
                ),
            ));
        }
        Ok(())
    };
    let out = |dtype: DType, shape: Vec<i64>| Ok(Inferred { dtype, shape });
    match op {
        Op::Placeholder | Op::Variable { .. } | Op::Const(_) | Op::InitialValue { .. } => {
            Err(err(op, "source nodes carry their own shape".into()))
        }
        Op::NoOp => out(DType::F32, vec![]),
        Op::Conv(c) => c.infer(dtypes, shapes),
        Op::Slice { begin, size } => {
            arity(1)?;
            let x = &shapes[0];
            if begin.len() != x.len() || size.len() != x.len() {
                return Err(err(
                    op,
                    format!(
                        "begin {begin:?} and size {size:?} must have one entry per axis of {}",
                        shape_str(x)
                    ),
                ));
            }
            let mut shape = Vec::with_capacity(x.len());
            for d in 0..x.len() {
                let (b, z, n) = (begin[d], size[d], x[d]);
                let fits = b >= 0 && z >= -1 && (n < 0 || (z < 0 && b <= n) || b + z <= n);
                if !fits {
                    return Err(err(
                        op,
                        format!(
                            "begin {b} and size {z} of axis {d} do not fit in shape {}",
                            shape_str(x)
                        ),
                    ));
                }
                shape.push(if z >= 0 {
                    z
                } else if n < 0 {
                    -1
                } else {
                    n - b
                });
            }
            out(dtypes[0], shape)
        }
        Op::StridedSlice(spec) => {
            arity(1)?;
            let x = &shapes[0];
            let (axes, unknown) = resolve_unknown(op, spec, x)?;
            let shape = axes
                .iter()
                .zip(&unknown)
                .filter(|(a, _)| !a.shrink)
                .map(|(a, &u)| if u { -1 } else { a.count as i64 })
                .collect();
            out(dtypes[0], shape)
        }
        Op::StridedSliceGrad(spec) => {
            arity(2)?;
            let (x, dy) = (&shapes[0], &shapes[1]);
            let (axes, unknown) = resolve_unknown(op, spec, x)?;
            let want: Vec<i64> = axes
                .iter()
                .zip(&unknown)
                .filter(|(a, _)| !a.shrink)
                .map(|(a, &u)| if u { -1 } else { a.count as i64 })
                .collect();
            if want.len() != dy.len() || !want.iter().zip(dy).all(|(&a, &b)| dims_match(a, b)) {
                return Err(err(
                    op,
                    format!(
                        "gradient of shape {} does not match the slice {} of {}",
                        shape_str(dy),
                        shape_str(&want),
                        shape_str(x)
                    ),
                ));
            }
            out(dtypes[1], x.clone())
        }
        Op::Pad { paddings, .. } => {
            arity(1)?;
            let x = &shapes[0];
            if paddings.len() != x.len() {
                return Err(err(
                    op,
                    format!(
                        "{} paddings for a tensor of rank {}",
                        paddings.len(),
                        x.len()
                    ),
                ));
            }
            let shape = x
                .iter()
                .zip(paddings)
                .map(|(&n, p)| if n < 0 { -1 } else { n + (p[0] + p[1]) as i64 })
                .collect();
            out(dtypes[0], shape)
        }
        Op::Tile { multiples } => {
            arity(1)?;
            let x = &shapes[0];
            if multiples.len() != x.len() {
                return Err(err(
                    op,
                    format!(
                        "{} multiples for a tensor of rank {}",
                        multiples.len(),
                        x.len()
                    ),
                ));
            }
            let shape = x
                .iter()
                .zip(multiples)
                .map(|(&n, &m)| if n < 0 { -1 } else { n * m as i64 })
                .collect();
            out(dtypes[0], shape)
        }
        Op::Concat { axis } => {
            if dtypes.is_empty() {
                return Err(err(op, "needs at least one input".into()));
            }
            let first = &shapes[0];
            if *axis >= first.len() {
                return Err(err(
                    op,
                    format!("axis {axis} out of range for shape {}", shape_str(first)),
                ));
            }
            let mut shape = first.clone();
            for (k, sh) in shapes.iter().enumerate().skip(1) {
                same_dtype(0, k)?;
                let ok = sh.len() == first.len()
                    && (0..sh.len()).all(|d| d == *axis || dims_match(sh[d], first[d]));
                if !ok {
                    return Err(err(
                        op,
                        format!(
                            "input {k} of shape {} does not match input 0 of shape {} but along axis {axis}",
                            shape_str(sh),
                            shape_str(first)
                        ),
                    ));
                }
                shape[*axis] = if shape[*axis] < 0 || sh[*axis] < 0 {
                    -1
                } else {
                    shape[*axis] + sh[*axis]
                };
                for d in 0..sh.len() {
                    if d != *axis && shape[d] < 0 {
                        shape[d] = sh[d];
                    }
                }
            }
            out(dtypes[0], shape)
        }
        Op::Select => {
            arity(3)?;
            if dtypes[0] != DType::Bool {
                return Err(err(
                    op,
                    format!("condition must be bool, got {}", dtypes[0]),
                ));
            }
            same_dtype(1, 2)?;
            let ab = broadcast_shapes(&shapes[1], &shapes[2]);
            match ab.and_then(|s| broadcast_shapes(&shapes[0], &s)) {
                Some(shape) => out(dtypes[1], shape),
                None => Err(err(
                    op,
                    format!(
                        "shapes {}, {} and {} do not broadcast",
                        shape_str(&shapes[0]),
                        shape_str(&shapes[1]),
                        shape_str(&shapes[2])
                    ),
                )),
            }
        }
        Op::Gather { axis, .. } => {
            arity(2)?;
            if !matches!(dtypes[1], DType::I32 | DType::U32) {
                return Err(err(op, format!("indices must be int32, got {}", dtypes[1])));
            }
            let p = &shapes[0];
            if *axis >= p.len() {
                return Err(err(
                    op,
                    format!(
                        "axis {axis} out of range for params of shape {}",
                        shape_str(p)
                    ),
                ));
            }
            let mut shape = p[..*axis].to_vec();
            shape.extend_from_slice(&shapes[1]);
            shape.extend_from_slice(&p[axis + 1..]);
            out(dtypes[0], shape)
        }
        Op::UnsortedSegmentSum { num_segments } => {
            arity(2)?;
            float_only(0)?;
            if !matches!(dtypes[1], DType::I32 | DType::U32) {
                return Err(err(
                    op,
                    format!("segment ids must be int32, got {}", dtypes[1]),
                ));
            }
            let (d, ids) = (&shapes[0], &shapes[1]);
            let prefix = ids.len() <= d.len() && ids.iter().zip(d).all(|(&a, &b)| dims_match(a, b));
            if !prefix {
                return Err(err(
                    op,
                    format!(
                        "segment ids of shape {} must be a prefix of the data shape {}",
                        shape_str(ids),
                        shape_str(d)
                    ),
                ));
            }
            let mut shape = vec![*num_segments as i64];
            shape.extend_from_slice(&d[ids.len()..]);
            out(DType::F32, shape)
        }
        Op::Dropout { rate, .. } => {
            arity(2)?;
            float_only(0)?;
            if !(0.0..1.0).contains(rate) {
                return Err(err(op, format!("rate {rate} must be in [0, 1)")));
            }
            if dtypes[1] != DType::I64 || !shapes[1].is_empty() {
                return Err(err(
                    op,
                    format!(
                        "the step must be an int64 scalar, got {} {}",
                        dtypes[1],
                        shape_str(&shapes[1])
                    ),
                ));
            }
            out(DType::F32, shapes[0].clone())
        }
        Op::Identity => {
            arity(1)?;
            out(dtypes[0], shapes[0].clone())
        }
        Op::Unary(u) => u.infer(dtypes, shapes),
        Op::Binary(b) => b.infer(dtypes, shapes),
        Op::Compare(c) => c.infer(dtypes, shapes),
        Op::BiasAdd => {
            arity(2)?;
            same_dtype(0, 1)?;
            if !matches!(dtypes[0], DType::F32 | DType::I32 | DType::U32) {
                return Err(err(op, format!("unsupported dtype {}", dtypes[0])));
            }
            let (v, bias) = (&shapes[0], &shapes[1]);
            if bias.len() != 1 || v.is_empty() {
                return Err(err(
                    op,
                    format!(
                        "bias must be rank 1 and value at least rank 1, got {} and {}",
                        shape_str(v),
                        shape_str(bias)
                    ),
                ));
            }
            let last = v[v.len() - 1];
            if last >= 0 && bias[0] >= 0 && last != bias[0] {
                return Err(err(
                    op,
                    format!(
                        "bias of shape {} does not match the last dimension of {}",
                        shape_str(bias),
                        shape_str(v)
                    ),
                ));
            }
            out(dtypes[0], v.clone())
        }
        Op::Cast(to) => {
            arity(1)?;
            out(*to, shapes[0].clone())
        }
        Op::MatMul(m) => m.infer(dtypes, shapes),
        Op::Reduction(r) => r.infer(dtypes, shapes),
        Op::Reshape(target) => {
            arity(1)?;
            out(dtypes[0], reshape_target(&shapes[0], target)?)
        }
        Op::ReshapeLike => {
            arity(2)?;
            if let (Some(a), Some(b)) = (known_numel(&shapes[0]), known_numel(&shapes[1]))
                && a != b
            {
                return Err(err(
                    op,
                    format!(
                        "cannot reshape {} to {}",
                        shape_str(&shapes[0]),
                        shape_str(&shapes[1])
                    ),
                ));
            }
            out(dtypes[0], shapes[1].clone())
        }
        Op::Transpose(perm) => {
            arity(1)?;
            let s = &shapes[0];
            let mut seen = vec![false; s.len()];
            if perm.len() != s.len()
                || perm
                    .iter()
                    .any(|&p| p >= s.len() || std::mem::replace(&mut seen[p], true))
            {
                return Err(err(
                    op,
                    format!(
                        "perm {perm:?} is not a permutation of the axes of {}",
                        shape_str(s)
                    ),
                ));
            }
            out(dtypes[0], perm.iter().map(|&p| s[p]).collect())
        }
        Op::OneHot { depth, .. } => {
            arity(1)?;
            if !matches!(dtypes[0], DType::I32 | DType::U32) {
                return Err(err(
                    op,
                    format!("indices must be int32 or uint32, got {}", dtypes[0]),
                ));
            }
            let mut shape = shapes[0].clone();
            shape.push(*depth as i64);
            out(DType::F32, shape)
        }
        Op::Softmax(s) => s.infer(dtypes, shapes),
        Op::Assign(a) => {
            arity(2)?;
            same_dtype(0, 1)?;
            if *a != AssignOp::Assign && dtypes[0] == DType::Bool {
                return Err(err(op, "bool variables support only Assign".into()));
            }
            if !compatible(&shapes[0], &shapes[1]) {
                return Err(err(
                    op,
                    format!(
                        "shapes must be equal: variable {} vs. value {}",
                        shape_str(&shapes[0]),
                        shape_str(&shapes[1])
                    ),
                ));
            }
            out(dtypes[0], shapes[0].clone())
        }
        Op::ApplyGradientDescent
        | Op::ApplyMomentum { .. }
        | Op::ApplyAdam { .. }
        | Op::ApplyRmsProp { .. } => {
            let n = match op {
                Op::ApplyGradientDescent => 3,
                Op::ApplyMomentum { .. } => 4,
                Op::ApplyAdam { .. } => 7,
                _ => 5,
            };
            arity(n)?;
            for i in 0..n {
                float_only(i)?;
            }
            let var = &shapes[0];
            let grad = &shapes[n - 1];
            if !compatible(var, grad) {
                return Err(err(
                    op,
                    format!(
                        "var and grad do not have the same shape {} {}",
                        shape_str(var),
                        shape_str(grad)
                    ),
                ));
            }
            out(DType::F32, var.clone())
        }
    }
}

/// Whether two dimensions can be equal (`-1` matches anything).
pub(crate) fn dims_match(a: i64, b: i64) -> bool {
    a < 0 || b < 0 || a == b
}

pub(crate) fn compatible(a: &[i64], b: &[i64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| dims_match(x, y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Op;

    #[test]
    fn broadcasting_rules() {
        assert_eq!(broadcast_shapes(&[3, 1], &[4]), Some(vec![3, 4]));
        assert_eq!(broadcast_shapes(&[-1, 10], &[10]), Some(vec![-1, 10]));
        assert_eq!(broadcast_shapes(&[2, 3], &[4, 3]), None);
        assert_eq!(broadcast_shapes(&[], &[5]), Some(vec![5]));
    }

    #[test]
    fn reshape_inference() {
        assert_eq!(reshape_target(&[2, 6], &[-1, 3]).unwrap(), vec![4, 3]);
        assert_eq!(reshape_target(&[-1, 6], &[-1, 3]).unwrap(), vec![-1, 3]);
        assert!(reshape_target(&[2, 6], &[5, -1]).is_err());
        assert!(reshape_target(&[2, 6], &[-1, -1]).is_err());
    }

    #[test]
    fn matmul_mismatch_names_shapes() {
        let op = Op::MatMul(crate::ops::MatMul {
            transpose_a: false,
            transpose_b: false,
        });
        let e = infer(&op, &[DType::F32, DType::F32], &[vec![2, 3], vec![4, 5]]).unwrap_err();
        assert_eq!(e.code, crate::Code::InvalidArgument);
        assert!(
            e.message.contains("[2,3]") && e.message.contains("[4,5]"),
            "{e}"
        );
    }
}
