//! The elementwise family's reference functions, one element at a time in `f64`.

use super::{BinaryOp, CompareOp, UnaryOp};
use crate::tensor::DType;

/// Applies a unary op to one element.
pub fn unary(op: UnaryOp, x: f64) -> f64 {
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Rsqrt => 1.0 / x.sqrt(),
        UnaryOp::Square => x * x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Relu => x.max(0.0),
        UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Softplus => {
            if x > 0.0 {
                x + (-x).exp().ln_1p()
            } else {
                x.exp().ln_1p()
            }
        }
        UnaryOp::Sign => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }
        UnaryOp::Cos => x.cos(),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Floor => x.floor(),
        UnaryOp::Reciprocal => 1.0 / x,
        UnaryOp::Gelu => x * normal_cdf(x),
    }
}

/// The standard normal distribution function, `Φ(x) = erfc(-x / √2) / 2` (no
/// cancellation in the lower tail).
fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x * std::f64::consts::FRAC_1_SQRT_2)
}

/// The standard normal density, `φ(x) = exp(-x² / 2) / √(2π)`.
fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Applies a binary op to one pair of elements of `dtype`.
pub fn binary(op: BinaryOp, a: f64, b: f64, dtype: DType) -> f64 {
    let r = match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => {
            if dtype.is_int() {
                if b == 0.0 { a } else { (a / b).trunc() }
            } else {
                a / b
            }
        }
        BinaryOp::Maximum => a.max(b),
        BinaryOp::Minimum => a.min(b),
        BinaryOp::Pow => a.powf(b),
        BinaryOp::ReluGrad => {
            if b > 0.0 {
                a
            } else {
                0.0
            }
        }
        BinaryOp::SigmoidGrad => b * a * (1.0 - a),
        BinaryOp::TanhGrad => b * (1.0 - a * a),
        BinaryOp::GeluGrad => b * (normal_cdf(a) + a * normal_pdf(a)),
    };
    match dtype {
        // Integer arithmetic wraps, as on the device.
        DType::I32 => f64::from(r as i64 as i32),
        DType::U32 => f64::from(r as i64 as u32),
        _ => r,
    }
}

/// Applies a comparison to one pair of elements (1 for true, 0 for false).
pub fn compare(op: CompareOp, a: f64, b: f64) -> f64 {
    let r = match op {
        CompareOp::Equal => a == b,
        CompareOp::NotEqual => a != b,
        CompareOp::Greater => a > b,
        CompareOp::GreaterEqual => a >= b,
        CompareOp::Less => a < b,
        CompareOp::LessEqual => a <= b,
    };
    f64::from(u8::from(r))
}
