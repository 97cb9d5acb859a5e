//! The random family: dropout, its mask a pure function of the seeds, the step and the
//! element index (Philox 4x32-10 in `shaders/random.wgsl`, mirrored by `crate::rng`), so
//! a resumed run draws the same masks and the reference draws the device's.

use super::Op;
use super::export::{Export, TfAttr};
use super::family::Family;
use super::infer::{Check, Inferred};
use crate::error::Result;
use crate::graph::{Graph, Node, Tensor};
use crate::reference::Value;
use crate::rng::dropout_keeps;
#[cfg(feature = "gpu")]
use crate::rng::key_of;
#[cfg(feature = "gpu")]
use crate::runtime::kernels::{Arg, Loc, Recorder};
#[cfg(feature = "gpu")]
use crate::runtime::shaders::Shader;
#[cfg(feature = "gpu")]
use crate::tensor::num_elements as numel;
use crate::tensor::{DType, shape_str};
#[cfg(feature = "gpu")]
use bytemuck::{Pod, Zeroable};

/// Keeps each element with probability `1 - rate`, scaled by `1 / (1 - rate)`: inputs
/// (x, step: an int64 scalar). The gradient is the same op on dy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// Probability of dropping an element, in `[0, 1)`.
    pub rate: f32,
    /// (graph seed, op seed).
    pub seed: (u64, u64),
}

/// Mirrors `Drop` in `random.wgsl`.
#[cfg(feature = "gpu")]
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct DropParams {
    n: u32,
    rate: f32,
    scale: f32,
    pad: u32,
    key: [u32; 2],
    pad2: [u32; 2],
}

impl Graph {
    /// Dropout of `x` with `rate`, its mask a pure function of the graph seed, `seed`
    /// (the op seed; the node index when `None`), the value of the int64 scalar `step`
    /// and the element index. Always applies: see `layers::dropout` for a training flag.
    pub fn dropout(
        &mut self,
        x: Tensor,
        rate: f32,
        step: Tensor,
        seed: Option<u64>,
    ) -> Result<Tensor> {
        let op_seed = seed.unwrap_or(self.nodes().len() as u64);
        let op = Dropout {
            rate,
            seed: (self.seed(), op_seed),
        };
        self.add_op(Op::Dropout(op), &[x, step], "dropout")
    }
}

/// Dropout with the device's mask for `step`.
fn reference(x: &Value, rate: f32, seed: (u64, u64), step: i64) -> Vec<f64> {
    let scale = 1.0 / (1.0 - f64::from(rate));
    x.data
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if dropout_keeps(seed, i as u32, step, rate) {
                // As the device: the scale rounded to f32 first.
                v * f64::from(scale as f32)
            } else {
                0.0
            }
        })
        .collect()
}

impl Family for Dropout {
    fn tf_name(&self) -> &'static str {
        "Dropout"
    }

    fn infer(&self, dtypes: &[DType], shapes: &[Vec<i64>]) -> Result<Inferred> {
        let c = Check::new(self.tf_name(), dtypes, shapes);
        c.arity(2)?;
        c.float_only(0)?;
        let rate = self.rate;
        if !(0.0..1.0).contains(&rate) {
            return Err(c.err(format!("rate {rate} must be in [0, 1)")));
        }
        if dtypes[1] != DType::I64 || !shapes[1].is_empty() {
            return Err(c.err(format!(
                "the step must be an int64 scalar, got {} {}",
                dtypes[1],
                shape_str(&shapes[1])
            )));
        }
        Ok(Inferred {
            dtype: DType::F32,
            shape: shapes[0].clone(),
        })
    }

    fn grad(
        &self,
        g: &mut Graph,
        node: &Node,
        _y: Tensor,
        dy: Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let d = g.add_op(Op::Dropout(*self), &[dy, node.inputs[1]], "DropoutGrad")?;
        Ok(vec![Some(d), None])
    }

    fn eval(&self, ins: &[&Value], _dtype: DType, _out_shape: &[usize]) -> Result<Vec<f64>> {
        Ok(reference(
            ins[0],
            self.rate,
            self.seed,
            ins[1].data[0] as i64,
        ))
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
        let n = numel(out_shape);
        if n == 0 {
            return Ok(());
        }
        let p = DropParams {
            n: n as u32,
            rate: self.rate,
            scale: (1.0 / (1.0 - f64::from(self.rate))) as f32,
            pad: 0,
            key: key_of(self.seed),
            pad2: [0; 2],
        };
        let groups = rec.groups_1d(n as u64)?;
        rec.dispatch(
            Shader::Random,
            "dropout",
            vec![],
            bytemuck::bytes_of(&p),
            &[(1, ins[0].loc), (2, ins[1].loc), (3, out)],
            groups,
        )
    }

    /// TF's dropout: a uniform draw per element kept where it reaches the rate, the kept
    /// scaled by `1 / (1 - rate)`. (wgtrain's masks are a pure function of the global
    /// step; TF draws its own.)
    fn export(&self, e: &mut Export<'_>) {
        let f32t = || TfAttr::Type(DType::F32);
        let shape = e.shape_of("Shape", &e.input(0), e.t());
        let seeds = |v: u64| TfAttr::Int((v & 0x7fff_ffff) as i64);
        let u = e.node(
            "random_uniform",
            "RandomUniform",
            vec![shape],
            vec![
                ("dtype", f32t()),
                ("T", TfAttr::Type(DType::I32)),
                ("seed", seeds(self.seed.0)),
                ("seed2", seeds(self.seed.1)),
            ],
        );
        let r = e.f32("rate", self.rate);
        let keep = e.node(
            "GreaterEqual",
            "GreaterEqual",
            vec![u, r],
            vec![("T", f32t())],
        );
        let mask = e.node(
            "Cast",
            "Cast",
            vec![keep],
            vec![
                ("SrcT", TfAttr::Type(DType::Bool)),
                ("DstT", f32t()),
                ("Truncate", TfAttr::Bool(false)),
            ],
        );
        let scale = e.f32("scale", 1.0 / (1.0 - self.rate));
        let scaled = e.node("mul", "Mul", vec![e.input(0), scale], vec![("T", f32t())]);
        e.op = "Mul".into();
        // The step input only orders the draw.
        e.inputs = vec![scaled, mask, format!("^{}", e.input(1))];
        e.attrs(vec![("T", f32t())]);
    }
}
