//! Dtype and shape inference: the same rules check a node when it is added (shapes may
//! hold `-1`) and resolve concrete shapes when a run is planned.

use super::Op;
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

/// Infers the dtype and shape of `op` applied to inputs of `dtypes` and `shapes`.
///
/// Shapes may contain `-1`; at plan time they are all known. An error is
/// InvalidArgument naming the op and the shapes that disagree.
pub fn infer(op: &Op, dtypes: &[DType], shapes: &[Vec<i64>]) -> Result<Inferred> {
    op.family().infer(dtypes, shapes)
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
