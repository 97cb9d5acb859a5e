//! The elementwise family: functions of one tensor ([`UnaryOp`]), of two broadcast
//! tensors ([`BinaryOp`]) and comparisons ([`CompareOp`]), with their builders, shape
//! rules, gradients, reference functions, kernel bindings (`shaders/elementwise.wgsl`,
//! whose opcode constants come from the `ALL` tables here) and TF spellings.

use super::Op;
use super::export::{Export, TfAttr};
use super::family::Family;
use super::infer::{Check, Inferred, broadcast_shapes};
use crate::autodiff::unbroadcast;
use crate::error::{Error, Result};
use crate::graph::{Graph, Node, Tensor};
use crate::reference::Value;
use crate::reference::eval::elementwise2;
#[cfg(feature = "gpu")]
use crate::runtime::kernels::{Arg, Loc, Recorder};
use crate::tensor::{DType, shape_str};

mod reference;

pub use reference::{binary, compare, unary};

/// Elementwise functions of one tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum UnaryOp {
    Neg = 0,
    Exp = 1,
    Log = 2,
    Sqrt = 3,
    Rsqrt = 4,
    Square = 5,
    Abs = 6,
    Relu = 7,
    Sigmoid = 8,
    Tanh = 9,
    Softplus = 10,
    Sign = 11,
    Cos = 12,
    Sin = 13,
    Floor = 14,
    Reciprocal = 15,
    /// The Gaussian error linear unit, exact: `x * Φ(x) = x / 2 * (1 + erf(x / √2))`.
    Gelu = 16,
}

impl UnaryOp {
    /// Every op with the name of its opcode constant in WGSL (`shaders/elementwise.wgsl`
    /// uses the names; [`crate::runtime::shaders::source`] defines them from this table).
    pub const ALL: &[(UnaryOp, &str)] = &[
        (UnaryOp::Neg, "UN_NEG"),
        (UnaryOp::Exp, "UN_EXP"),
        (UnaryOp::Log, "UN_LOG"),
        (UnaryOp::Sqrt, "UN_SQRT"),
        (UnaryOp::Rsqrt, "UN_RSQRT"),
        (UnaryOp::Square, "UN_SQUARE"),
        (UnaryOp::Abs, "UN_ABS"),
        (UnaryOp::Relu, "UN_RELU"),
        (UnaryOp::Sigmoid, "UN_SIGMOID"),
        (UnaryOp::Tanh, "UN_TANH"),
        (UnaryOp::Softplus, "UN_SOFTPLUS"),
        (UnaryOp::Sign, "UN_SIGN"),
        (UnaryOp::Cos, "UN_COS"),
        (UnaryOp::Sin, "UN_SIN"),
        (UnaryOp::Floor, "UN_FLOOR"),
        (UnaryOp::Reciprocal, "UN_RECIPROCAL"),
        (UnaryOp::Gelu, "UN_GELU"),
    ];

    /// TensorFlow's op name.
    pub fn tf_name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "Neg",
            UnaryOp::Exp => "Exp",
            UnaryOp::Log => "Log",
            UnaryOp::Sqrt => "Sqrt",
            UnaryOp::Rsqrt => "Rsqrt",
            UnaryOp::Square => "Square",
            UnaryOp::Abs => "Abs",
            UnaryOp::Relu => "Relu",
            UnaryOp::Sigmoid => "Sigmoid",
            UnaryOp::Tanh => "Tanh",
            UnaryOp::Softplus => "Softplus",
            UnaryOp::Sign => "Sign",
            UnaryOp::Cos => "Cos",
            UnaryOp::Sin => "Sin",
            UnaryOp::Floor => "Floor",
            UnaryOp::Reciprocal => "Reciprocal",
            UnaryOp::Gelu => "Gelu",
        }
    }

    /// The opcode shared with `shaders/elementwise.wgsl`.
    #[cfg(feature = "gpu")]
    pub(crate) fn code(self) -> u32 {
        self as u32
    }

    /// Whether the op is defined for integer inputs too.
    pub(crate) fn allows_int(self) -> bool {
        matches!(
            self,
            UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Square | UnaryOp::Sign
        )
    }
}

/// Elementwise functions of two tensors, with NumPy broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `a + b`.
    Add = 0,
    /// `a - b`.
    Sub = 1,
    /// `a * b`.
    Mul = 2,
    /// `a / b` (truncating for integers).
    Div = 3,
    /// `max(a, b)`.
    Maximum = 4,
    /// `min(a, b)`.
    Minimum = 5,
    /// `a ^ b`.
    Pow = 6,
    /// The gradient of ReLU: `a` (incoming gradient) where `b` (the output) > 0, else 0.
    ReluGrad = 7,
    /// The gradient of sigmoid: `b * a * (1 - a)` with `a` the output, `b` the gradient.
    SigmoidGrad = 8,
    /// The gradient of tanh: `b * (1 - a^2)` with `a` the output, `b` the gradient.
    TanhGrad = 9,
    /// The gradient of GELU: `b * (Φ(a) + a * φ(a))` with `a` the input, `b` the
    /// gradient.
    GeluGrad = 10,
}

impl BinaryOp {
    /// Every op with the name of its opcode constant in WGSL (`shaders/elementwise.wgsl`
    /// uses the names; [`crate::runtime::shaders::source`] defines them from this table).
    pub const ALL: &[(BinaryOp, &str)] = &[
        (BinaryOp::Add, "BIN_ADD"),
        (BinaryOp::Sub, "BIN_SUB"),
        (BinaryOp::Mul, "BIN_MUL"),
        (BinaryOp::Div, "BIN_DIV"),
        (BinaryOp::Maximum, "BIN_MAXIMUM"),
        (BinaryOp::Minimum, "BIN_MINIMUM"),
        (BinaryOp::Pow, "BIN_POW"),
        (BinaryOp::ReluGrad, "BIN_RELU_GRAD"),
        (BinaryOp::SigmoidGrad, "BIN_SIGMOID_GRAD"),
        (BinaryOp::TanhGrad, "BIN_TANH_GRAD"),
        (BinaryOp::GeluGrad, "BIN_GELU_GRAD"),
    ];

    /// TensorFlow's op name.
    pub fn tf_name(self) -> &'static str {
        match self {
            BinaryOp::Add => "AddV2",
            BinaryOp::Sub => "Sub",
            BinaryOp::Mul => "Mul",
            BinaryOp::Div => "RealDiv",
            BinaryOp::Maximum => "Maximum",
            BinaryOp::Minimum => "Minimum",
            BinaryOp::Pow => "Pow",
            BinaryOp::ReluGrad => "ReluGrad",
            BinaryOp::SigmoidGrad => "SigmoidGrad",
            BinaryOp::TanhGrad => "TanhGrad",
            BinaryOp::GeluGrad => "GeluGrad",
        }
    }

    /// The opcode shared with the family's WGSL.
    #[cfg(feature = "gpu")]
    pub(crate) fn code(self) -> u32 {
        self as u32
    }

    pub(crate) fn allows_int(self) -> bool {
        matches!(
            self,
            BinaryOp::Add
                | BinaryOp::Sub
                | BinaryOp::Mul
                | BinaryOp::Div
                | BinaryOp::Maximum
                | BinaryOp::Minimum
        )
    }
}

/// Elementwise comparisons; the result is [`DType::Bool`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum CompareOp {
    Equal = 0,
    NotEqual = 1,
    Greater = 2,
    GreaterEqual = 3,
    Less = 4,
    LessEqual = 5,
}

impl CompareOp {
    /// Every op with the name of its opcode constant in WGSL (`shaders/elementwise.wgsl`
    /// uses the names; [`crate::runtime::shaders::source`] defines them from this table).
    pub const ALL: &[(CompareOp, &str)] = &[
        (CompareOp::Equal, "CMP_EQUAL"),
        (CompareOp::NotEqual, "CMP_NOT_EQUAL"),
        (CompareOp::Greater, "CMP_GREATER"),
        (CompareOp::GreaterEqual, "CMP_GREATER_EQUAL"),
        (CompareOp::Less, "CMP_LESS"),
        (CompareOp::LessEqual, "CMP_LESS_EQUAL"),
    ];

    /// TensorFlow's op name.
    pub fn tf_name(self) -> &'static str {
        match self {
            CompareOp::Equal => "Equal",
            CompareOp::NotEqual => "NotEqual",
            CompareOp::Greater => "Greater",
            CompareOp::GreaterEqual => "GreaterEqual",
            CompareOp::Less => "Less",
            CompareOp::LessEqual => "LessEqual",
        }
    }

    /// The opcode shared with the family's WGSL.
    #[cfg(feature = "gpu")]
    pub(crate) fn code(self) -> u32 {
        100 + self as u32
    }
}

macro_rules! unary_builders {
    ($($fn:ident => $op:ident),* $(,)?) => {$(
        #[doc = concat!("Elementwise `", stringify!($fn), "` (TF's `", stringify!($op), "`).")]
        pub fn $fn(&mut self, x: Tensor) -> Result<Tensor> {
            self.unary(UnaryOp::$op, x)
        }
    )*};
}

macro_rules! binary_builders {
    ($($fn:ident => $op:ident),* $(,)?) => {$(
        #[doc = concat!("Elementwise `", stringify!($fn), "` with NumPy broadcasting.")]
        pub fn $fn(&mut self, a: Tensor, b: Tensor) -> Result<Tensor> {
            self.binary(BinaryOp::$op, a, b)
        }
    )*};
}

macro_rules! compare_builders {
    ($($fn:ident => $op:ident),* $(,)?) => {$(
        #[doc = concat!("Elementwise `", stringify!($fn), "` comparison with broadcasting; the result is bool.")]
        pub fn $fn(&mut self, a: Tensor, b: Tensor) -> Result<Tensor> {
            let op = CompareOp::$op;
            self.add_op(Op::Compare(op), &[a, b], op.tf_name())
        }
    )*};
}

impl Graph {
    /// An elementwise unary op.
    pub fn unary(&mut self, op: UnaryOp, x: Tensor) -> Result<Tensor> {
        self.add_op(Op::Unary(op), &[x], op.tf_name())
    }

    /// An elementwise binary op with broadcasting.
    pub fn binary(&mut self, op: BinaryOp, a: Tensor, b: Tensor) -> Result<Tensor> {
        let name = match op {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "truediv",
            _ => op.tf_name(),
        };
        self.add_op(Op::Binary(op), &[a, b], name)
    }

    unary_builders!(
        neg => Neg, exp => Exp, log => Log, sqrt => Sqrt, rsqrt => Rsqrt,
        square => Square, abs => Abs, relu => Relu, sigmoid => Sigmoid, tanh => Tanh,
        softplus => Softplus, sign => Sign, cos => Cos, sin => Sin, floor => Floor,
        reciprocal => Reciprocal, gelu => Gelu,
    );

    binary_builders!(
        add => Add, sub => Sub, mul => Mul, div => Div, maximum => Maximum,
        minimum => Minimum, pow => Pow,
    );

    compare_builders!(
        equal => Equal, not_equal => NotEqual, greater => Greater,
        greater_equal => GreaterEqual, less => Less, less_equal => LessEqual,
    );
}

/// The broadcast shape of inputs 0 and 1, or InvalidArgument naming both.
fn broadcast2(c: &Check<'_>) -> Result<Vec<i64>> {
    let s = c.shapes;
    broadcast_shapes(&s[0], &s[1]).ok_or_else(|| {
        c.err(format!(
            "incompatible shapes: {} vs. {}",
            shape_str(&s[0]),
            shape_str(&s[1])
        ))
    })
}

impl Family for UnaryOp {
    fn tf_name(&self) -> &'static str {
        UnaryOp::tf_name(*self)
    }

    fn infer(&self, dtypes: &[DType], shapes: &[Vec<i64>]) -> Result<Inferred> {
        let c = Check::new(Family::tf_name(self), dtypes, shapes);
        c.arity(1)?;
        let ok = dtypes[0] == DType::F32 || (self.allows_int() && dtypes[0] == DType::I32);
        if !ok {
            return Err(c.err(format!("unsupported dtype {}", dtypes[0])));
        }
        Ok(Inferred {
            dtype: dtypes[0],
            shape: shapes[0].clone(),
        })
    }

    fn grad(
        &self,
        g: &mut Graph,
        node: &Node,
        y: Tensor,
        dy: Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let xi = node.inputs[0];
        let r = match self {
            UnaryOp::Neg => g.neg(dy)?,
            UnaryOp::Exp => g.mul(dy, y)?,
            UnaryOp::Log => g.div(dy, xi)?,
            UnaryOp::Sqrt => {
                let half = g.scalar(0.5)?;
                let t = g.div(half, y)?;
                g.mul(dy, t)?
            }
            UnaryOp::Rsqrt => {
                let c = g.scalar(-0.5)?;
                let y2 = g.square(y)?;
                let y3 = g.mul(y2, y)?;
                let t = g.mul(y3, c)?;
                g.mul(dy, t)?
            }
            UnaryOp::Square => {
                let two = g.scalar(2.0)?;
                let t = g.mul(xi, two)?;
                g.mul(dy, t)?
            }
            UnaryOp::Abs => {
                let s = g.sign(xi)?;
                g.mul(dy, s)?
            }
            UnaryOp::Relu => g.binary(BinaryOp::ReluGrad, dy, y)?,
            UnaryOp::Sigmoid => g.binary(BinaryOp::SigmoidGrad, y, dy)?,
            UnaryOp::Tanh => g.binary(BinaryOp::TanhGrad, y, dy)?,
            UnaryOp::Softplus => {
                let s = g.sigmoid(xi)?;
                g.mul(dy, s)?
            }
            UnaryOp::Cos => {
                let s = g.sin(xi)?;
                let t = g.mul(dy, s)?;
                g.neg(t)?
            }
            UnaryOp::Sin => {
                let c = g.cos(xi)?;
                g.mul(dy, c)?
            }
            UnaryOp::Reciprocal => {
                let y2 = g.square(y)?;
                let t = g.mul(dy, y2)?;
                g.neg(t)?
            }
            UnaryOp::Gelu => g.binary(BinaryOp::GeluGrad, xi, dy)?,
            UnaryOp::Sign | UnaryOp::Floor => return Ok(vec![None]),
        };
        Ok(vec![Some(r)])
    }

    fn eval(&self, ins: &[&Value], _dtype: DType, _out_shape: &[usize]) -> Result<Vec<f64>> {
        Ok(ins[0].data.iter().map(|&x| unary(*self, x)).collect())
    }

    #[cfg(feature = "gpu")]
    fn record(
        &self,
        rec: &mut Recorder<'_>,
        ins: &[Arg<'_>],
        out: &Loc,
        _out_dtype: DType,
        _out_shape: &[usize],
    ) -> Result<()> {
        rec.elementwise_unary(self.code(), &ins[0], out)
    }

    fn export(&self, e: &mut Export<'_>) {
        let t = e.t();
        if let UnaryOp::Gelu = self {
            // TF has no GELU kernel: tf.nn.gelu(approximate=False) composes it.
            let x = e.input(0);
            let cdf = tf_normal_cdf(e, &x);
            let half = e.f32("mul/y", 0.5);
            let half_x = tf_node(e, "mul", "Mul", vec![x, half]);
            e.op = "Mul".into();
            e.inputs = vec![half_x, cdf];
        }
        e.attrs(vec![("T", TfAttr::Type(t))]);
    }
}

/// A float helper node `<name>/<suffix>` of op `op`.
fn tf_node(e: &mut Export<'_>, suffix: &str, op: &str, inputs: Vec<String>) -> String {
    e.node(suffix, op, inputs, vec![("T", TfAttr::Type(DType::F32))])
}

/// Helper nodes computing `1 + erf(x / √2)` (twice the normal distribution function)
/// as tf.nn.gelu spells it.
fn tf_normal_cdf(e: &mut Export<'_>, x: &str) -> String {
    let sqrt2 = e.f32("truediv/y", std::f32::consts::SQRT_2);
    let z = tf_node(e, "truediv", "RealDiv", vec![x.into(), sqrt2]);
    let erf = tf_node(e, "Erf", "Erf", vec![z]);
    let one = e.f32("add/x", 1.0);
    tf_node(e, "add", "AddV2", vec![one, erf])
}

impl Family for BinaryOp {
    fn tf_name(&self) -> &'static str {
        BinaryOp::tf_name(*self)
    }

    fn infer(&self, dtypes: &[DType], shapes: &[Vec<i64>]) -> Result<Inferred> {
        let c = Check::new(Family::tf_name(self), dtypes, shapes);
        c.arity(2)?;
        c.same_dtype(0, 1)?;
        let ok = dtypes[0] == DType::F32
            || (self.allows_int() && matches!(dtypes[0], DType::I32 | DType::U32));
        if !ok {
            return Err(c.err(format!("unsupported dtype {}", dtypes[0])));
        }
        Ok(Inferred {
            dtype: dtypes[0],
            shape: broadcast2(&c)?,
        })
    }

    fn grad(
        &self,
        g: &mut Graph,
        node: &Node,
        y: Tensor,
        dy: Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let (a, bb) = (node.inputs[0], node.inputs[1]);
        let (ga, gb) = match self {
            BinaryOp::Add => (Some(dy), Some(dy)),
            BinaryOp::Sub => (Some(dy), Some(g.neg(dy)?)),
            BinaryOp::Mul => (Some(g.mul(dy, bb)?), Some(g.mul(dy, a)?)),
            BinaryOp::Div => {
                let ga = g.div(dy, bb)?;
                let t = g.mul(dy, y)?;
                let t = g.div(t, bb)?;
                (Some(ga), Some(g.neg(t)?))
            }
            BinaryOp::Maximum | BinaryOp::Minimum => {
                let ma = if *self == BinaryOp::Maximum {
                    g.greater_equal(a, bb)?
                } else {
                    g.less_equal(a, bb)?
                };
                let ma = g.cast(ma, DType::F32)?;
                let one_t = g.scalar(1.0)?;
                let mb = g.sub(one_t, ma)?;
                (Some(g.mul(dy, ma)?), Some(g.mul(dy, mb)?))
            }
            BinaryOp::Pow => {
                // d/da = b * a^(b-1); d/db = y * log(a) (0 where a <= 0, as TF).
                let one_t = g.scalar(1.0)?;
                let bm1 = g.sub(bb, one_t)?;
                let p = g.pow(a, bm1)?;
                let t = g.mul(p, bb)?;
                let ga = g.mul(dy, t)?;
                let zero = g.scalar(0.0)?;
                let pos = g.greater(a, zero)?;
                let pos = g.cast(pos, DType::F32)?;
                let tiny = g.scalar(f32::MIN_POSITIVE)?;
                let safe = g.maximum(a, tiny)?;
                let la = g.log(safe)?;
                let la = g.mul(la, pos)?;
                let t = g.mul(y, la)?;
                (Some(ga), Some(g.mul(dy, t)?))
            }
            other => {
                return Err(Error::unimplemented(format!(
                    "gradient of {} (second-order) is not implemented",
                    other.tf_name()
                )));
            }
        };
        let ga = match ga {
            Some(t) => Some(unbroadcast(g, t, a, y)?),
            None => None,
        };
        let gb = match gb {
            Some(t) => Some(unbroadcast(g, t, bb, y)?),
            None => None,
        };
        Ok(vec![ga, gb])
    }

    fn eval(&self, ins: &[&Value], _dtype: DType, out_shape: &[usize]) -> Result<Vec<f64>> {
        let dtype = ins[0].dtype;
        Ok(elementwise2(ins[0], ins[1], out_shape, |x, y| {
            binary(*self, x, y, dtype)
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
        rec.broadcast_binary(self.code(), ins, out, out_shape)
    }

    fn export(&self, e: &mut Export<'_>) {
        let t = e.t();
        if let BinaryOp::GeluGrad = self {
            // dy * (Φ(x) + x φ(x)) = dy * ((1 + erf(x / √2)) / 2 + x exp(-x² / 2) / √(2π)).
            let (x, dy) = (e.input(0), e.input(1));
            let cdf2 = tf_normal_cdf(e, &x);
            let half = e.f32("mul/y", 0.5);
            let cdf = tf_node(e, "mul", "Mul", vec![cdf2, half]);
            let sq = tf_node(e, "Square", "Square", vec![x.clone()]);
            let c = e.f32("mul_1/y", -0.5);
            let arg = tf_node(e, "mul_1", "Mul", vec![sq, c]);
            let exp = tf_node(e, "Exp", "Exp", vec![arg]);
            let k = e.f32(
                "mul_2/y",
                (1.0 / (2.0 * std::f64::consts::PI).sqrt()) as f32,
            );
            let pdf = tf_node(e, "mul_2", "Mul", vec![exp, k]);
            let xpdf = tf_node(e, "mul_3", "Mul", vec![x, pdf]);
            let d = tf_node(e, "add_1", "AddV2", vec![cdf, xpdf]);
            e.op = "Mul".into();
            e.inputs = vec![dy, d];
        }
        e.attrs(vec![("T", TfAttr::Type(t))]);
    }
}

impl Family for CompareOp {
    fn tf_name(&self) -> &'static str {
        CompareOp::tf_name(*self)
    }

    fn infer(&self, dtypes: &[DType], shapes: &[Vec<i64>]) -> Result<Inferred> {
        let c = Check::new(Family::tf_name(self), dtypes, shapes);
        c.arity(2)?;
        c.same_dtype(0, 1)?;
        if !matches!(dtypes[0], DType::F32 | DType::I32 | DType::U32) {
            return Err(c.err(format!("unsupported dtype {}", dtypes[0])));
        }
        Ok(Inferred {
            dtype: DType::Bool,
            shape: broadcast2(&c)?,
        })
    }

    fn grad(
        &self,
        _g: &mut Graph,
        _node: &Node,
        _y: Tensor,
        _dy: Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![None, None])
    }

    fn eval(&self, ins: &[&Value], _dtype: DType, out_shape: &[usize]) -> Result<Vec<f64>> {
        Ok(elementwise2(ins[0], ins[1], out_shape, |x, y| {
            compare(*self, x, y)
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
        rec.broadcast_binary(self.code(), ins, out, out_shape)
    }

    fn export(&self, e: &mut Export<'_>) {
        e.attrs(vec![("T", TfAttr::Type(e.t()))]);
    }
}
