//! The matmul family: the matrix product over the last two axes, batched over equal
//! leading axes (`shaders/matmul.wgsl`, whose register-blocked kernels the planner also
//! fuses with a bias, a ReLU or the cross-entropy gradient, see `runtime/fusion/`),
//! and the bias added after it ([`BiasAdd`], a broadcast add of `elementwise.wgsl`
//! where it is not fused).

use super::BinaryOp;
use super::Op;
use super::elementwise::binary;
use super::export::{Export, TfAttr};
use super::family::Family;
use super::infer::{Check, Inferred};
use crate::error::Result;
use crate::graph::{Graph, Node, Tensor};
use crate::reference::Value;
use crate::reference::eval::elementwise2;
#[cfg(feature = "gpu")]
use crate::runtime::kernels::{Arg, Loc, Recorder};
use crate::tensor::{DType, shape_str};

/// A matrix product's attrs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatMul {
    /// Transpose the last two axes of `a` first.
    pub transpose_a: bool,
    /// Transpose the last two axes of `b` first.
    pub transpose_b: bool,
}

/// Adds a rank-1 bias (input 1) along the last axis of input 0 (TF's `BiasAdd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BiasAdd;

impl Graph {
    /// Adds the rank-1 `bias` along the last axis of `value`.
    pub fn bias_add(&mut self, value: Tensor, bias: Tensor) -> Result<Tensor> {
        self.add_op(Op::BiasAdd, &[value, bias], "BiasAdd")
    }

    /// Matrix product `a @ b` (rank 2, or batched over equal leading dimensions).
    pub fn matmul(&mut self, a: Tensor, b: Tensor) -> Result<Tensor> {
        self.matmul_t(a, b, false, false)
    }

    /// Matrix product with optional transposition of the last two axes of each input.
    pub fn matmul_t(
        &mut self,
        a: Tensor,
        b: Tensor,
        transpose_a: bool,
        transpose_b: bool,
    ) -> Result<Tensor> {
        let name = if self.shape(a).len() > 2 {
            "BatchMatMulV2"
        } else {
            "MatMul"
        };
        let op = Op::MatMul(MatMul {
            transpose_a,
            transpose_b,
        });
        self.add_op(op, &[a, b], name)
    }
}

impl Family for MatMul {
    fn tf_name(&self) -> &'static str {
        "MatMul"
    }

    fn infer(&self, dtypes: &[DType], shapes: &[Vec<i64>]) -> Result<Inferred> {
        let c = Check::new(self.tf_name(), dtypes, shapes);
        c.arity(2)?;
        c.float_only(0)?;
        c.same_dtype(0, 1)?;
        let (a, b) = (&shapes[0], &shapes[1]);
        let (transpose_a, transpose_b) = (self.transpose_a, self.transpose_b);
        if a.len() < 2 || a.len() != b.len() {
            return Err(c.err(format!(
                "inputs must have the same rank >= 2, got {} and {}",
                shape_str(a),
                shape_str(b)
            )));
        }
        let r = a.len();
        let batch = &a[..r - 2];
        if batch != &b[..r - 2] {
            return Err(c.err(format!(
                "batch dimensions differ: {} vs. {}",
                shape_str(a),
                shape_str(b)
            )));
        }
        let (m, ka) = if self.transpose_a {
            (a[r - 1], a[r - 2])
        } else {
            (a[r - 2], a[r - 1])
        };
        let (kb, n) = if self.transpose_b {
            (b[r - 1], b[r - 2])
        } else {
            (b[r - 2], b[r - 1])
        };
        if ka >= 0 && kb >= 0 && ka != kb {
            return Err(c.err(format!(
                        "Matrix size-incompatible: In[0]: {}, In[1]: {} (transpose_a={transpose_a}, transpose_b={transpose_b})",
                        shape_str(a),
                        shape_str(b)
                    ),
                ));
        }
        let mut s = batch.to_vec();
        s.extend([m, n]);
        Ok(Inferred {
            dtype: DType::F32,
            shape: s,
        })
    }

    fn grad(
        &self,
        g: &mut Graph,
        node: &Node,
        _y: Tensor,
        dy: Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let (a, b) = (node.inputs[0], node.inputs[1]);
        let (da, db) = match (self.transpose_a, self.transpose_b) {
            (false, false) => (
                g.matmul_t(dy, b, false, true)?,
                g.matmul_t(a, dy, true, false)?,
            ),
            (true, false) => (
                g.matmul_t(b, dy, false, true)?,
                g.matmul_t(a, dy, false, false)?,
            ),
            (false, true) => (
                g.matmul_t(dy, b, false, false)?,
                g.matmul_t(dy, a, true, false)?,
            ),
            (true, true) => (
                g.matmul_t(b, dy, true, true)?,
                g.matmul_t(dy, a, true, true)?,
            ),
        };
        Ok(vec![Some(da), Some(db)])
    }

    fn eval(&self, ins: &[&Value], _dtype: DType, out_shape: &[usize]) -> Result<Vec<f64>> {
        Ok({
            let (a, b) = (ins[0], ins[1]);
            let r = a.shape.len();
            let (m, n2) = (out_shape[r - 2], out_shape[r - 1]);
            let k = if self.transpose_a {
                a.shape[r - 2]
            } else {
                a.shape[r - 1]
            };
            let batch: usize = out_shape[..r - 2].iter().product();
            let (ar, ac) = (a.shape[r - 2], a.shape[r - 1]);
            let (br, bc) = (b.shape[r - 2], b.shape[r - 1]);
            let mut out = vec![0.0; batch * m * n2];
            for bi in 0..batch {
                for i in 0..m {
                    for j in 0..n2 {
                        let mut s = 0.0;
                        for kk in 0..k {
                            let av = if self.transpose_a {
                                a.data[bi * ar * ac + kk * ac + i]
                            } else {
                                a.data[bi * ar * ac + i * ac + kk]
                            };
                            let bv = if self.transpose_b {
                                b.data[bi * br * bc + j * bc + kk]
                            } else {
                                b.data[bi * br * bc + kk * bc + j]
                            };
                            s += av * bv;
                        }
                        out[bi * m * n2 + i * n2 + j] = s;
                    }
                }
            }
            out
        })
    }

    #[cfg(feature = "gpu")]
    fn record(
        &self,
        rec: &mut Recorder<'_>,
        ins: &[Arg<'_>],
        out: &Loc,
        _out_dtype: DType,
        out_shape: &[usize],
    ) -> Result<()> {
        let (ta, tb) = (self.transpose_a, self.transpose_b);
        rec.matmul(&ins[0], &ins[1], ta, tb, out, out_shape, None)
    }

    fn export(&self, e: &mut Export<'_>) {
        e.attrs(vec![("T", TfAttr::Type(e.t()))]);
        if e.shape().len() > 2 {
            e.op = "BatchMatMulV2".into();
            e.attrs(vec![
                ("adj_x", TfAttr::Bool(self.transpose_a)),
                ("adj_y", TfAttr::Bool(self.transpose_b)),
            ]);
        } else {
            e.attrs(vec![
                ("transpose_a", TfAttr::Bool(self.transpose_a)),
                ("transpose_b", TfAttr::Bool(self.transpose_b)),
            ]);
        }
    }
}

impl Family for BiasAdd {
    fn tf_name(&self) -> &'static str {
        "BiasAdd"
    }

    fn infer(&self, dtypes: &[DType], shapes: &[Vec<i64>]) -> Result<Inferred> {
        let c = Check::new(self.tf_name(), dtypes, shapes);
        c.arity(2)?;
        c.same_dtype(0, 1)?;
        if !matches!(dtypes[0], DType::F32 | DType::I32 | DType::U32) {
            return Err(c.err(format!("unsupported dtype {}", dtypes[0])));
        }
        let (v, bias) = (&shapes[0], &shapes[1]);
        if bias.len() != 1 || v.is_empty() {
            return Err(c.err(format!(
                "bias must be rank 1 and value at least rank 1, got {} and {}",
                shape_str(v),
                shape_str(bias)
            )));
        }
        let last = v[v.len() - 1];
        if last >= 0 && bias[0] >= 0 && last != bias[0] {
            return Err(c.err(format!(
                "bias of shape {} does not match the last dimension of {}",
                shape_str(bias),
                shape_str(v)
            )));
        }
        Ok(Inferred {
            dtype: dtypes[0],
            shape: v.clone(),
        })
    }

    /// `dy` for the value; `dy` summed over all but the last axis for the bias.
    fn grad(
        &self,
        g: &mut Graph,
        _node: &Node,
        _y: Tensor,
        dy: Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let rank = g.shape(dy).len() as i64;
        let axes: Vec<i64> = (0..rank - 1).collect();
        let gb = if axes.is_empty() {
            dy
        } else {
            g.reduce_sum(dy, &axes, false)?
        };
        Ok(vec![Some(dy), Some(gb)])
    }

    fn eval(&self, ins: &[&Value], dtype: DType, out_shape: &[usize]) -> Result<Vec<f64>> {
        Ok(elementwise2(ins[0], ins[1], out_shape, |x, y| {
            binary(BinaryOp::Add, x, y, dtype)
        }))
    }

    #[cfg(feature = "gpu")]
    fn record(
        &self,
        rec: &mut Recorder<'_>,
        ins: &[Arg<'_>],
        out: &Loc,
        _out_dtype: DType,
        out_shape: &[usize],
    ) -> Result<()> {
        rec.broadcast_binary(BinaryOp::Add.code(), ins, out, out_shape)
    }

    fn export(&self, e: &mut Export<'_>) {
        e.attrs(vec![
            ("T", TfAttr::Type(e.t())),
            ("data_format", TfAttr::Str("NHWC".into())),
        ]);
    }
}
