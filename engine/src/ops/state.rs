//! The state family: the graph's sources (placeholders, constants, variables and their
//! initial values), assignments to variables (`shaders/state.wgsl`) and the group op.
//!
//! Sources are not computed: the planner places them (a fed buffer, a constant upload,
//! the variable's own storage) and the reference interpreter reads them from its feeds
//! and variables, so their kernels record nothing and their reference holds only what a
//! constant knows.

use super::Op;
use super::export::{Export, TfAttr};
use super::family::{Family, not_differentiable};
use super::infer::{Check, Inferred, compatible};
use crate::error::{Error, Result};
use crate::graph::{Graph, Node, Tensor};
use crate::reference::Value;
use crate::reference::eval::cast_value;
#[cfg(feature = "gpu")]
use crate::runtime::kernels::params::CountParams;
#[cfg(feature = "gpu")]
use crate::runtime::kernels::{Arg, Loc, Recorder, dt_code};
#[cfg(feature = "gpu")]
use crate::runtime::shaders::Shader;
#[cfg(feature = "gpu")]
use crate::tensor::num_elements as numel;
use crate::tensor::{DType, HostTensor, shape_str};

/// How a variable's initial value is produced. Random initializers are seeded from the
/// graph seed and the op seed, so the same graph gives the same values every time.
#[derive(Clone, Debug, PartialEq)]
pub enum Initializer {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// Every element `value`.
    Constant(f64),
    /// Uniform in `[min, max)`.
    RandomUniform {
        /// Lower bound.
        min: f64,
        /// Upper bound (exclusive).
        max: f64,
    },
    /// Normal with `mean` and `stddev`.
    RandomNormal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        stddev: f64,
    },
    /// Normal with values beyond two standard deviations redrawn (TF's truncated normal).
    TruncatedNormal {
        /// Mean.
        mean: f64,
        /// Standard deviation before truncation.
        stddev: f64,
    },
    /// Glorot (Xavier) uniform: `U(-l, l)` with `l = sqrt(6 / (fan_in + fan_out))`.
    GlorotUniform,
    /// Glorot normal: truncated normal with `stddev = sqrt(2 / (fan_in + fan_out)) / .8796`.
    GlorotNormal,
    /// A given tensor.
    Value(HostTensor),
}

/// The graph's sources: nodes without inputs whose values come from outside the run.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A value fed at run time.
    Placeholder,
    /// A constant.
    Const(HostTensor),
    /// A variable: state on the device that persists between runs.
    Variable {
        /// Whether the variable is in the trainable collection.
        trainable: bool,
    },
    /// A host-evaluated initial value (deterministic for a given seed pair).
    InitialValue {
        /// The initializer.
        init: Initializer,
        /// (graph seed, op seed).
        seed: (u64, u64),
    },
}

/// Variable updates: input 0 the variable, input 1 the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AssignOp {
    /// `var = value`.
    Assign,
    /// `var += value`.
    Add,
    /// `var -= value`.
    Sub,
}

/// Does nothing; a target for control dependencies (`group`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoOp;

impl Graph {
    /// A value fed at run time. `shape` may hold `-1` for dimensions known only then
    /// (the batch dimension).
    pub fn placeholder(&mut self, name: &str, dtype: DType, shape: &[i64]) -> Result<Tensor> {
        if shape.iter().any(|&d| d < -1) {
            return Err(Error::invalid_argument(format!(
                "placeholder '{name}': invalid shape {}",
                shape_str(shape)
            )));
        }
        let op = Op::Source(Source::Placeholder);
        self.push_node(op, vec![], dtype, shape.to_vec(), name, true)
    }

    /// A constant tensor named `name`.
    pub fn constant(&mut self, value: HostTensor, name: &str) -> Result<Tensor> {
        let shape = value.shape().iter().map(|&d| d as i64).collect();
        let dtype = value.dtype();
        self.push_node(
            Op::Source(Source::Const(value)),
            vec![],
            dtype,
            shape,
            name,
            true,
        )
    }
}

/// TF's initializer ops for `init` of a variable of `shape`: (random op, scale, offset),
/// or `None` for a constant value.
fn random_spelling(init: &Initializer, shape: &[i64]) -> Option<(&'static str, f64, f64)> {
    let (fan_in, fan_out) = match shape.len() {
        0 => (1.0, 1.0),
        1 => (shape[0] as f64, shape[0] as f64),
        r => {
            let field: f64 = shape[..r - 2].iter().map(|&d| d as f64).product();
            (shape[r - 2] as f64 * field, shape[r - 1] as f64 * field)
        }
    };
    match init {
        Initializer::RandomUniform { min, max } => Some(("RandomUniform", max - min, *min)),
        Initializer::GlorotUniform => {
            let limit = (6.0 / (fan_in + fan_out)).sqrt();
            Some(("RandomUniform", 2.0 * limit, -limit))
        }
        Initializer::RandomNormal { mean, stddev } => {
            Some(("RandomStandardNormal", *stddev, *mean))
        }
        Initializer::TruncatedNormal { mean, stddev } => Some(("TruncatedNormal", *stddev, *mean)),
        // Keras' glorot_normal: a truncated normal of this deviation.
        Initializer::GlorotNormal => Some((
            "TruncatedNormal",
            (2.0 / (fan_in + fan_out)).sqrt() / 0.879_625_661_034_239_8,
            0.0,
        )),
        Initializer::Zeros
        | Initializer::Ones
        | Initializer::Constant(_)
        | Initializer::Value(_) => None,
    }
}

/// An initial value as TF builds it: `random * scale + offset`, or a `Const`.
fn export_initial_value(e: &mut Export<'_>, init: &Initializer, seed: (u64, u64)) {
    let (dtype, shape) = (e.dtype(), e.shape().to_vec());
    let t = TfAttr::Type(dtype);
    match random_spelling(init, &shape) {
        Some((random_op, scale, offset)) => {
            let s = e.i32s("shape", &shape);
            let seeds = |v: u64| TfAttr::Int((v & 0x7fff_ffff) as i64);
            let r = e.node(
                random_op,
                random_op,
                vec![s],
                vec![
                    ("dtype", t.clone()),
                    ("T", TfAttr::Type(DType::I32)),
                    ("seed", seeds(seed.0)),
                    ("seed2", seeds(seed.1)),
                ],
            );
            let scale = e.f32("scale", scale as f32);
            let scaled = e.node("mul", "Mul", vec![r, scale], vec![("T", t.clone())]);
            let offset = e.f32("offset", offset as f32);
            e.op = "AddV2".into();
            e.inputs = vec![scaled, offset];
            e.attrs(vec![("T", t)]);
        }
        None => {
            let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
            let fill = |v: f64| {
                let count = dims.iter().product::<usize>();
                HostTensor::from_f64(dtype, &dims, &vec![v; count])
                    .unwrap_or_else(|_| HostTensor::zeros(dtype, &dims))
            };
            let value = match init {
                Initializer::Ones => fill(1.0),
                Initializer::Constant(c) => fill(*c),
                Initializer::Value(v) => v.clone(),
                _ => HostTensor::zeros(dtype, &dims),
            };
            e.op = "Const".into();
            e.attrs(vec![("dtype", t), ("value", TfAttr::Tensor(value))]);
        }
    }
}

impl Family for Source {
    fn tf_name(&self) -> &'static str {
        match self {
            Source::Placeholder => "Placeholder",
            Source::Const(_) => "Const",
            Source::Variable { .. } => "VariableV2",
            Source::InitialValue { init, .. } => match random_spelling(init, &[]) {
                Some((op, ..)) => op,
                None => "Const",
            },
        }
    }

    fn infer(&self, dtypes: &[DType], shapes: &[Vec<i64>]) -> Result<Inferred> {
        Err(Check::new(self.tf_name(), dtypes, shapes)
            .err("source nodes carry their own shape".into()))
    }

    /// Sources have no inputs.
    fn grad(
        &self,
        _g: &mut Graph,
        _n: &Node,
        _y: Tensor,
        _dy: Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![])
    }

    fn eval(&self, _ins: &[&Value], dtype: DType, shape: &[usize]) -> Result<Vec<f64>> {
        match self {
            Source::Const(v) => Ok(Value::from_host(v).data),
            Source::InitialValue { init, seed } => {
                let v = crate::rng::initial_value(init, dtype, shape, *seed)?;
                Ok(Value::from_host(&v).data)
            }
            Source::Placeholder => Err(Error::internal("reference: unfed placeholder")),
            Source::Variable { .. } => Err(Error::internal(
                "reference: a variable is read from the interpreter's state",
            )),
        }
    }

    /// The planner places sources: nothing to record.
    #[cfg(feature = "gpu")]
    fn record(
        &self,
        _rec: &mut Recorder<'_>,
        _ins: &[Arg<'_>],
        _out: &Loc,
        _dtype: DType,
        _shape: &[usize],
    ) -> Result<()> {
        Ok(())
    }

    fn export(&self, e: &mut Export<'_>) {
        let (t, shape) = (TfAttr::Type(e.dtype()), TfAttr::Shape(e.shape().to_vec()));
        match self {
            Source::Placeholder => e.attrs(vec![("dtype", t), ("shape", shape)]),
            Source::Variable { .. } => e.attrs(vec![
                ("dtype", t),
                ("shape", shape),
                ("container", TfAttr::Str(String::new())),
                ("shared_name", TfAttr::Str(String::new())),
            ]),
            Source::Const(v) => e.attrs(vec![("dtype", t), ("value", TfAttr::Tensor(v.clone()))]),
            Source::InitialValue { init, seed } => export_initial_value(e, init, *seed),
        }
    }
}

impl Family for AssignOp {
    fn tf_name(&self) -> &'static str {
        match self {
            AssignOp::Assign => "Assign",
            AssignOp::Add => "AssignAdd",
            AssignOp::Sub => "AssignSub",
        }
    }

    fn infer(&self, dtypes: &[DType], shapes: &[Vec<i64>]) -> Result<Inferred> {
        let c = Check::new(self.tf_name(), dtypes, shapes);
        c.arity(2)?;
        c.same_dtype(0, 1)?;
        if *self != AssignOp::Assign && dtypes[0] == DType::Bool {
            return Err(c.err("bool variables support only Assign".into()));
        }
        if !compatible(&shapes[0], &shapes[1]) {
            return Err(c.err(format!(
                "shapes must be equal: variable {} vs. value {}",
                shape_str(&shapes[0]),
                shape_str(&shapes[1])
            )));
        }
        Ok(Inferred {
            dtype: dtypes[0],
            shape: shapes[0].clone(),
        })
    }

    fn grad(
        &self,
        _g: &mut Graph,
        node: &Node,
        _y: Tensor,
        _dy: Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        Err(not_differentiable(self, node))
    }

    /// The variable's new value.
    fn eval(&self, ins: &[&Value], dtype: DType, shape: &[usize]) -> Result<Vec<f64>> {
        Ok(self.updates(ins, dtype, shape)?.swap_remove(0).1)
    }

    fn updates(
        &self,
        ins: &[&Value],
        dtype: DType,
        _shape: &[usize],
    ) -> Result<Vec<(usize, Vec<f64>)>> {
        let (cur, v) = (ins[0], ins[1]);
        let new = match self {
            AssignOp::Assign => v.data.clone(),
            AssignOp::Add | AssignOp::Sub => {
                let sign = if *self == AssignOp::Add { 1.0 } else { -1.0 };
                cur.data
                    .iter()
                    .zip(&v.data)
                    .map(|(a, b)| cast_value(a + sign * b, dtype))
                    .collect()
            }
        };
        Ok(vec![(0, new)])
    }

    #[cfg(feature = "gpu")]
    fn record(
        &self,
        rec: &mut Recorder<'_>,
        ins: &[Arg<'_>],
        _out: &Loc,
        dtype: DType,
        shape: &[usize],
    ) -> Result<()> {
        let (var, value) = (ins[0].loc, ins[1].loc);
        if *self == AssignOp::Assign {
            rec.copy(value, var);
            return Ok(());
        }
        // A value in the variable's own buffer (an arena) cannot be bound for reading
        // while the variable is bound for writing: copy it out first.
        let value = if value.buf == var.buf {
            let temp = rec.scratch("assign value", value.size);
            rec.copy(value, &temp);
            temp
        } else {
            value.clone()
        };
        let n = numel(shape);
        let p = CountParams {
            n: n as u32,
            pad: [0; 3],
        };
        let groups = rec.groups_1d(n as u64)?;
        rec.dispatch(
            Shader::State,
            "assign_update",
            vec![
                ("OP", u32::from(*self == AssignOp::Sub)),
                ("DT", dt_code(dtype)),
            ],
            bytemuck::bytes_of(&p),
            &[(1, var), (2, &value)],
            groups,
        )
    }

    fn export(&self, e: &mut Export<'_>) {
        e.attrs(vec![
            ("T", TfAttr::Type(e.dtype())),
            ("use_locking", TfAttr::Bool(false)),
        ]);
        if *self == AssignOp::Assign {
            e.attrs(vec![("validate_shape", TfAttr::Bool(true))]);
        }
    }
}

impl Family for NoOp {
    fn tf_name(&self) -> &'static str {
        "NoOp"
    }

    /// No value: a placeholder dtype and shape.
    fn infer(&self, _dtypes: &[DType], _shapes: &[Vec<i64>]) -> Result<Inferred> {
        Ok(Inferred {
            dtype: DType::F32,
            shape: vec![],
        })
    }

    fn grad(
        &self,
        _g: &mut Graph,
        node: &Node,
        _y: Tensor,
        _dy: Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        Err(not_differentiable(self, node))
    }

    fn eval(&self, _ins: &[&Value], _dtype: DType, _shape: &[usize]) -> Result<Vec<f64>> {
        Ok(vec![])
    }

    #[cfg(feature = "gpu")]
    fn record(
        &self,
        _rec: &mut Recorder<'_>,
        _ins: &[Arg<'_>],
        _out: &Loc,
        _dtype: DType,
        _shape: &[usize],
    ) -> Result<()> {
        Ok(())
    }

    fn export(&self, _e: &mut Export<'_>) {}
}
