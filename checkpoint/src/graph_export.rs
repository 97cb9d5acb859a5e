//! A wgtrain graph as TensorFlow's `GraphDef`: TF's op names and attrs (`MatMul` with
//! `transpose_a`, `Conv2D` with `strides` and `padding`, …), inputs by name, control
//! inputs as `^name`, and the constant inputs TF's ops take (reduction indices, shapes,
//! permutations) as `Const` nodes under the op's name, so TensorBoard draws the model
//! with its name scopes. Also its text form (`graph.pbtxt`), parsed back by
//! [`parse_pbtxt`] (both in [`crate::pbtxt`]), and the `MetaGraphDef` written as
//! `<checkpoint>.meta`.

use crate::error::{Error, Result};
pub use crate::pbtxt::{parse_pbtxt, to_pbtxt};
use crate::proto::{
    AttrKind, AttrValue, CollectionDef, Dim, GraphDef, ListValue, MetaGraphDef, MetaInfoDef,
    NodeDef, NodeList, SaverDef, TensorProto, TensorShapeProto, VersionDef,
};
use crate::tensor::TfDType;
use std::collections::BTreeMap;
use wgtrain_engine::ops::export::{Export, TfAttr, TfNode};
use wgtrain_engine::ops::{Initializer, StridedSpec};
use wgtrain_engine::{DType, Graph, HostTensor, Op, Tensor};

/// The `versions.producer` TF 2.21 writes.
pub const PRODUCER: i32 = 2474;

fn attr(kind: AttrKind) -> AttrValue {
    AttrValue { value: Some(kind) }
}

fn ty(d: DType) -> AttrValue {
    attr(AttrKind::Type(TfDType::of(d).code()))
}

fn shape_proto(shape: &[i64]) -> TensorShapeProto {
    TensorShapeProto {
        dim: shape
            .iter()
            .map(|&d| Dim {
                size: d,
                name: String::new(),
            })
            .collect(),
        unknown_rank: false,
    }
}

fn ints(v: &[i64]) -> AttrValue {
    attr(AttrKind::List(ListValue {
        i: v.to_vec(),
        ..Default::default()
    }))
}

fn s(v: &str) -> AttrValue {
    attr(AttrKind::S(v.as_bytes().to_vec()))
}

fn b(v: bool) -> AttrValue {
    attr(AttrKind::B(v))
}

/// A tensor as a `TensorProto` (contents as raw little-endian bytes).
pub fn tensor_proto(t: &HostTensor) -> TensorProto {
    let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
    TensorProto {
        dtype: TfDType::of(t.dtype()).code(),
        tensor_shape: Some(shape_proto(&shape)),
        tensor_content: t.bytes().to_vec(),
        ..Default::default()
    }
}

/// An attr as the protobuf holds it.
fn tf_attr(a: TfAttr) -> AttrValue {
    match a {
        TfAttr::Type(d) => ty(d),
        TfAttr::Shape(s) => attr(AttrKind::Shape(shape_proto(&s))),
        TfAttr::Int(v) => attr(AttrKind::I(v)),
        TfAttr::Float(v) => attr(AttrKind::F(v)),
        TfAttr::Bool(v) => b(v),
        TfAttr::Ints(v) => ints(&v),
        TfAttr::Str(v) => s(&v),
        TfAttr::Tensor(t) => attr(AttrKind::Tensor(tensor_proto(&t))),
    }
}

/// A node as the protobuf holds it.
fn node_def_of(n: TfNode) -> NodeDef {
    NodeDef {
        name: n.name,
        op: n.op,
        input: n.inputs,
        device: String::new(),
        attr: n.attrs.into_iter().map(|(k, v)| (k, tf_attr(v))).collect(),
    }
}

/// Builds the nodes of one wgtrain node: the node itself (under its own name) and the
/// helper nodes TF's spelling of it needs (constant inputs, shapes read with `Shape`,
/// the pieces of a gradient TF writes as several ops), named under it.
struct Emit<'a> {
    name: &'a str,
    extra: Vec<NodeDef>,
}

impl Emit<'_> {
    /// A helper node `<name>/<suffix>`; returns its name.
    fn node(
        &mut self,
        suffix: &str,
        op: &str,
        input: Vec<String>,
        attrs: Vec<(&str, AttrValue)>,
    ) -> String {
        let name = format!("{}/{suffix}", self.name);
        self.extra.push(NodeDef {
            name: name.clone(),
            op: op.into(),
            input,
            device: String::new(),
            attr: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        });
        name
    }

    /// A `Const` helper holding `value`.
    fn constant(&mut self, suffix: &str, value: &HostTensor) -> String {
        self.node(
            suffix,
            "Const",
            vec![],
            vec![
                ("dtype", ty(value.dtype())),
                ("value", attr(AttrKind::Tensor(tensor_proto(value)))),
            ],
        )
    }

    /// An int32 vector `Const`.
    fn i32s(&mut self, suffix: &str, v: &[i64]) -> String {
        let t = HostTensor::from_i32(&[v.len()], v.iter().map(|&x| x as i32).collect())
            .unwrap_or_else(|_| HostTensor::zeros(DType::I32, &[0]));
        self.constant(suffix, &t)
    }

    /// An int32 scalar `Const`.
    fn i32(&mut self, suffix: &str, v: i64) -> String {
        self.constant(suffix, &HostTensor::scalar_i32(v as i32))
    }

    /// A float scalar `Const`.
    fn f32(&mut self, suffix: &str, v: f32) -> String {
        let t = HostTensor::from_f32(&[], vec![v])
            .unwrap_or_else(|_| HostTensor::zeros(DType::F32, &[]));
        self.constant(suffix, &t)
    }

    /// Float scalar `Const`s of an update's hyperparameters, as inputs before its last
    /// (the gradient), where TF's `Apply*` ops take them.
    fn before_grad(&mut self, inputs: &mut Vec<String>, hyper: &[(&str, f32)]) {
        let grad = inputs.pop().unwrap_or_default();
        for (name, v) in hyper {
            inputs.push(self.f32(name, *v));
        }
        inputs.push(grad);
    }

    /// The int32 shape of `input` (of dtype `dtype`), read with `Shape`.
    fn shape(&mut self, suffix: &str, input: &str, dtype: DType) -> String {
        self.node(
            suffix,
            "Shape",
            vec![input.to_string()],
            vec![("T", ty(dtype)), ("out_type", ty(DType::I32))],
        )
    }
}

/// The attrs of a strided slice (TF's masks; no ellipsis, no new axes).
fn strided_attrs(spec: &StridedSpec, t: DType) -> Vec<(&'static str, AttrValue)> {
    let m = |v: u64| attr(AttrKind::I(v as i64));
    vec![
        ("T", ty(t)),
        ("Index", ty(DType::I32)),
        ("begin_mask", m(spec.begin_mask)),
        ("end_mask", m(spec.end_mask)),
        ("ellipsis_mask", m(0)),
        ("new_axis_mask", m(0)),
        ("shrink_axis_mask", m(spec.shrink_axis_mask)),
    ]
}

/// Makes every update of an optimizer wait for all of its gradients, as TF's
/// `gate_gradients` does: wgtrain computes every gradient of a step from the values
/// before the step, and so must TF, which would otherwise be free to update a weight
/// before the gradient of the layer below read it. One `NoOp` per optimizer (the
/// first part of the update's name) gathers the gradients; each update depends on it.
fn gate_gradients(nodes: &mut Vec<NodeDef>) {
    let grad_input = |op: &str| match op {
        "ApplyGradientDescent" => Some(2),
        "ApplyMomentum" => Some(3),
        "ApplyRMSProp" => Some(7),
        "ApplyAdam" => Some(9),
        _ => None,
    };
    let mut gates: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in nodes.iter_mut() {
        let Some(k) = grad_input(&n.op) else { continue };
        let Some(grad) = n.input.get(k).cloned() else {
            continue;
        };
        let scope = n.name.split('/').next().unwrap_or(&n.name).to_string();
        let gate = format!("{scope}/gate_gradients");
        let grad = grad.split(':').next().unwrap_or(&grad).to_string();
        gates
            .entry(gate.clone())
            .or_default()
            .push(format!("^{grad}"));
        n.input.push(format!("^{gate}"));
    }
    for (name, mut deps) in gates {
        deps.sort();
        deps.dedup();
        nodes.push(node_def(&name, "NoOp", deps, vec![]));
    }
}

/// The `GraphDef` of `g`, every node an op TF registers with TF's inputs and attrs:
/// what wgtrain computes as one node TF spells as its gradient graph does (a shape read
/// with `Shape`, `BroadcastGradientArgs` and `Sum` for the gradient of a broadcast, the
/// backprop output of `SparseSoftmaxCrossEntropyWithLogits`, `ApplyAdam` with its
/// hyperparameters as inputs), so TF imports the graph and runs it as its own.
pub fn graph_def(g: &Graph) -> GraphDef {
    let nodes = g.nodes();
    let mut out: Vec<NodeDef> = Vec::with_capacity(nodes.len());
    for n in nodes {
        let mut attrs: BTreeMap<String, AttrValue> = BTreeMap::new();
        let name_of = |k: usize| nodes[n.inputs[k].index()].name.clone();
        let dtype_of = |k: usize| nodes[n.inputs[k].index()].dtype;
        let mut inputs: Vec<String> = (0..n.inputs.len()).map(name_of).collect();
        let input_dtype = n
            .inputs
            .first()
            .map(|t| nodes[t.index()].dtype)
            .unwrap_or(n.dtype);
        let mut e = Emit {
            name: &n.name,
            extra: Vec::new(),
        };
        let set = |attrs: &mut BTreeMap<String, AttrValue>, kvs: Vec<(&str, AttrValue)>| {
            for (k, v) in kvs {
                attrs.insert(k.to_string(), v);
            }
        };
        let mut op = n.op.tf_name().to_string();
        let dtypes = (0..n.inputs.len()).map(dtype_of).collect();
        let mut x = Export::new(&n.name, &op, n.dtype, &n.shape, inputs.clone(), dtypes);
        if n.op.export(&mut x) {
            let (extra, node) = x.finish();
            e.extra.extend(extra.into_iter().map(node_def_of));
            op = node.op;
            inputs = node.inputs;
            attrs.extend(node.attrs.into_iter().map(|(k, v)| (k, tf_attr(v))));
        } else {
            match &n.op {
                Op::Placeholder => {
                    set(
                        &mut attrs,
                        vec![
                            ("dtype", ty(n.dtype)),
                            ("shape", attr(AttrKind::Shape(shape_proto(&n.shape)))),
                        ],
                    );
                }
                Op::Variable { .. } => {
                    set(
                        &mut attrs,
                        vec![
                            ("dtype", ty(n.dtype)),
                            ("shape", attr(AttrKind::Shape(shape_proto(&n.shape)))),
                            ("container", s("")),
                            ("shared_name", s("")),
                        ],
                    );
                }
                Op::Const(v) => {
                    set(
                        &mut attrs,
                        vec![
                            ("dtype", ty(n.dtype)),
                            ("value", attr(AttrKind::Tensor(tensor_proto(v)))),
                        ],
                    );
                }
                Op::InitialValue { init, seed } => {
                    let dims: Vec<usize> = n.shape.iter().map(|&d| d.max(0) as usize).collect();
                    let fill = |v: f64| {
                        let count = dims.iter().product::<usize>();
                        HostTensor::from_f64(n.dtype, &dims, &vec![v; count])
                            .unwrap_or_else(|_| HostTensor::zeros(n.dtype, &dims))
                    };
                    // (random op, scale, offset) as TF's initializers build them.
                    let (fan_in, fan_out) = match n.shape.len() {
                        0 => (1.0, 1.0),
                        1 => (n.shape[0] as f64, n.shape[0] as f64),
                        r => {
                            let field: f64 = n.shape[..r - 2].iter().map(|&d| d as f64).product();
                            (n.shape[r - 2] as f64 * field, n.shape[r - 1] as f64 * field)
                        }
                    };
                    let random = match init {
                        Initializer::RandomUniform { min, max } => {
                            Some(("RandomUniform", max - min, *min))
                        }
                        Initializer::GlorotUniform => {
                            let limit = (6.0 / (fan_in + fan_out)).sqrt();
                            Some(("RandomUniform", 2.0 * limit, -limit))
                        }
                        Initializer::RandomNormal { mean, stddev } => {
                            Some(("RandomStandardNormal", *stddev, *mean))
                        }
                        Initializer::TruncatedNormal { mean, stddev } => {
                            Some(("TruncatedNormal", *stddev, *mean))
                        }
                        // Keras' glorot_normal: a truncated normal of this deviation.
                        Initializer::GlorotNormal => Some((
                            "TruncatedNormal",
                            (2.0 / (fan_in + fan_out)).sqrt() / 0.879_625_661_034_239_8,
                            0.0,
                        )),
                        _ => None,
                    };
                    match random {
                        Some((random_op, scale, offset)) => {
                            let shape = e.i32s("shape", &n.shape);
                            let seeds = |v: u64| attr(AttrKind::I((v & 0x7fff_ffff) as i64));
                            let r = e.node(
                                random_op,
                                random_op,
                                vec![shape],
                                vec![
                                    ("dtype", ty(n.dtype)),
                                    ("T", ty(DType::I32)),
                                    ("seed", seeds(seed.0)),
                                    ("seed2", seeds(seed.1)),
                                ],
                            );
                            let scale = e.f32("scale", scale as f32);
                            let scaled =
                                e.node("mul", "Mul", vec![r, scale], vec![("T", ty(n.dtype))]);
                            let offset = e.f32("offset", offset as f32);
                            op = "AddV2".into();
                            inputs = vec![scaled, offset];
                            set(&mut attrs, vec![("T", ty(n.dtype))]);
                        }
                        None => {
                            let value = match init {
                                Initializer::Ones => fill(1.0),
                                Initializer::Constant(c) => fill(*c),
                                Initializer::Value(v) => v.clone(),
                                _ => HostTensor::zeros(n.dtype, &dims),
                            };
                            op = "Const".into();
                            set(
                                &mut attrs,
                                vec![
                                    ("dtype", ty(n.dtype)),
                                    ("value", attr(AttrKind::Tensor(tensor_proto(&value)))),
                                ],
                            );
                        }
                    }
                }
                Op::Reshape(target) => {
                    inputs.push(e.i32s("shape", target));
                    set(
                        &mut attrs,
                        vec![("T", ty(input_dtype)), ("Tshape", ty(DType::I32))],
                    );
                }
                Op::ReshapeLike => {
                    inputs[1] = e.shape("Shape", &name_of(1), dtype_of(1));
                    set(
                        &mut attrs,
                        vec![("T", ty(input_dtype)), ("Tshape", ty(DType::I32))],
                    );
                }
                Op::Transpose(perm) => {
                    let p: Vec<i64> = perm.iter().map(|&x| x as i64).collect();
                    inputs.push(e.i32s("perm", &p));
                    set(
                        &mut attrs,
                        vec![("T", ty(input_dtype)), ("Tperm", ty(DType::I32))],
                    );
                }
                Op::Cast(to) => {
                    set(
                        &mut attrs,
                        vec![
                            ("SrcT", ty(input_dtype)),
                            ("DstT", ty(*to)),
                            ("Truncate", b(false)),
                        ],
                    );
                }
                Op::OneHot {
                    depth,
                    on_value,
                    off_value,
                } => {
                    inputs.push(e.i32("depth", *depth as i64));
                    inputs.push(e.f32("on_value", *on_value));
                    inputs.push(e.f32("off_value", *off_value));
                    set(
                        &mut attrs,
                        vec![
                            ("T", ty(DType::F32)),
                            ("TI", ty(input_dtype)),
                            ("axis", attr(AttrKind::I(-1))),
                        ],
                    );
                }
                Op::BiasAdd => {
                    set(
                        &mut attrs,
                        vec![("T", ty(input_dtype)), ("data_format", s("NHWC"))],
                    );
                }
                Op::Slice { begin, size } => {
                    inputs.push(e.i32s("begin", begin));
                    inputs.push(e.i32s("size", size));
                    set(
                        &mut attrs,
                        vec![("T", ty(input_dtype)), ("Index", ty(DType::I32))],
                    );
                }
                Op::StridedSlice(spec) => {
                    inputs.push(e.i32s("stack", &spec.begin));
                    inputs.push(e.i32s("stack_1", &spec.end));
                    inputs.push(e.i32s("stack_2", &spec.strides));
                    set(&mut attrs, strided_attrs(spec, input_dtype));
                }
                Op::StridedSliceGrad(spec) => {
                    let shape = e.shape("Shape", &name_of(0), dtype_of(0));
                    let begin = e.i32s("stack", &spec.begin);
                    let end = e.i32s("stack_1", &spec.end);
                    let strides = e.i32s("stack_2", &spec.strides);
                    inputs = vec![shape, begin, end, strides, name_of(1)];
                    set(&mut attrs, strided_attrs(spec, dtype_of(1)));
                }
                Op::Pad { paddings, value } => {
                    let flat: Vec<i32> = paddings
                        .iter()
                        .flat_map(|p| [p[0] as i32, p[1] as i32])
                        .collect();
                    let t = HostTensor::from_i32(&[paddings.len(), 2], flat)
                        .unwrap_or_else(|_| HostTensor::zeros(DType::I32, &[0, 2]));
                    inputs.push(e.constant("paddings", &t));
                    let v = HostTensor::from_f64(input_dtype, &[], &[f64::from(*value)])
                        .unwrap_or_else(|_| HostTensor::zeros(input_dtype, &[]));
                    inputs.push(e.constant("constant_values", &v));
                    set(
                        &mut attrs,
                        vec![("T", ty(input_dtype)), ("Tpaddings", ty(DType::I32))],
                    );
                }
                Op::Tile { multiples } => {
                    let m: Vec<i64> = multiples.iter().map(|&x| x as i64).collect();
                    inputs.push(e.i32s("multiples", &m));
                    set(
                        &mut attrs,
                        vec![("T", ty(input_dtype)), ("Tmultiples", ty(DType::I32))],
                    );
                }
                Op::Concat { axis } => {
                    inputs.push(e.i32("axis", *axis as i64));
                    set(
                        &mut attrs,
                        vec![
                            ("T", ty(input_dtype)),
                            ("N", attr(AttrKind::I(n.inputs.len() as i64))),
                            ("Tidx", ty(DType::I32)),
                        ],
                    );
                }
                Op::Gather { axis, .. } => {
                    inputs.push(e.i32("axis", *axis as i64));
                    set(
                        &mut attrs,
                        vec![
                            ("Tparams", ty(input_dtype)),
                            ("Tindices", ty(DType::I32)),
                            ("Taxis", ty(DType::I32)),
                            ("batch_dims", attr(AttrKind::I(0))),
                        ],
                    );
                }
                Op::UnsortedSegmentSum { num_segments } => {
                    inputs.push(e.i32("num_segments", *num_segments as i64));
                    set(
                        &mut attrs,
                        vec![
                            ("T", ty(DType::F32)),
                            ("Tindices", ty(DType::I32)),
                            ("Tnumsegments", ty(DType::I32)),
                        ],
                    );
                }
                Op::Dropout { rate, seed } => {
                    // TF's dropout: a uniform draw per element kept where it reaches the
                    // rate, the kept scaled by 1 / (1 - rate). (wgtrain's masks are a pure
                    // function of the global step; TF draws its own.)
                    let shape = e.shape("Shape", &name_of(0), input_dtype);
                    let seeds = |v: u64| attr(AttrKind::I((v & 0x7fff_ffff) as i64));
                    let u = e.node(
                        "random_uniform",
                        "RandomUniform",
                        vec![shape],
                        vec![
                            ("dtype", ty(DType::F32)),
                            ("T", ty(DType::I32)),
                            ("seed", seeds(seed.0)),
                            ("seed2", seeds(seed.1)),
                        ],
                    );
                    let r = e.f32("rate", *rate);
                    let keep = e.node(
                        "GreaterEqual",
                        "GreaterEqual",
                        vec![u, r],
                        vec![("T", ty(DType::F32))],
                    );
                    let mask = e.node(
                        "Cast",
                        "Cast",
                        vec![keep],
                        vec![
                            ("SrcT", ty(DType::Bool)),
                            ("DstT", ty(DType::F32)),
                            ("Truncate", b(false)),
                        ],
                    );
                    let scale = e.f32("scale", 1.0 / (1.0 - *rate));
                    let scaled = e.node(
                        "mul",
                        "Mul",
                        vec![name_of(0), scale],
                        vec![("T", ty(DType::F32))],
                    );
                    op = "Mul".into();
                    // The step input only orders the draw.
                    inputs = vec![scaled, mask, format!("^{}", name_of(1))];
                    set(&mut attrs, vec![("T", ty(DType::F32))]);
                }
                Op::Assign(_) => {
                    attrs.insert("T".into(), ty(n.dtype));
                    attrs.insert("use_locking".into(), b(false));
                    if op == "Assign" {
                        attrs.insert("validate_shape".into(), b(true));
                    }
                }
                Op::ApplyGradientDescent => {
                    set(
                        &mut attrs,
                        vec![("T", ty(DType::F32)), ("use_locking", b(false))],
                    );
                }
                Op::ApplyRmsProp {
                    rho,
                    momentum,
                    epsilon,
                } => {
                    // TF: (var, ms, mom, lr, rho, momentum, epsilon, grad).
                    e.before_grad(
                        &mut inputs,
                        &[
                            ("rho", *rho),
                            ("momentum", *momentum),
                            ("epsilon", *epsilon),
                        ],
                    );
                    set(
                        &mut attrs,
                        vec![("T", ty(DType::F32)), ("use_locking", b(false))],
                    );
                }
                Op::ApplyMomentum { momentum, nesterov } => {
                    // TF: (var, accum, lr, grad, momentum).
                    inputs.push(e.f32("momentum", *momentum));
                    set(
                        &mut attrs,
                        vec![
                            ("T", ty(DType::F32)),
                            ("use_locking", b(false)),
                            ("use_nesterov", b(*nesterov)),
                        ],
                    );
                }
                Op::ApplyAdam {
                    beta1,
                    beta2,
                    epsilon,
                    ..
                } => {
                    // TF: (var, m, v, beta1_power, beta2_power, lr, beta1, beta2, epsilon,
                    // grad).
                    e.before_grad(
                        &mut inputs,
                        &[("beta1", *beta1), ("beta2", *beta2), ("epsilon", *epsilon)],
                    );
                    set(
                        &mut attrs,
                        vec![
                            ("T", ty(DType::F32)),
                            ("use_locking", b(false)),
                            ("use_nesterov", b(false)),
                        ],
                    );
                }
                Op::NoOp => {}
                Op::Select => {
                    attrs.insert("T".into(), ty(n.dtype));
                }
                _ => {
                    attrs.insert("T".into(), ty(input_dtype));
                }
            }
        }
        inputs.extend(
            n.control_inputs
                .iter()
                .map(|c| format!("^{}", nodes[c.index()].name)),
        );
        out.extend(e.extra);
        out.push(NodeDef {
            name: n.name.clone(),
            op,
            input: inputs,
            device: String::new(),
            attr: attrs,
        });
    }
    gate_gradients(&mut out);
    GraphDef {
        node: out,
        versions: Some(VersionDef {
            producer: PRODUCER,
            min_consumer: 12,
            bad_consumers: vec![],
        }),
    }
}

/// A string tensor `Const` (TF's `DT_STRING`).
fn string_const(name: &str, values: &[&str], shape: &[i64]) -> NodeDef {
    let t = TensorProto {
        dtype: TfDType::String.code(),
        tensor_shape: Some(shape_proto(shape)),
        string_val: values.iter().map(|v| v.as_bytes().to_vec()).collect(),
        ..Default::default()
    };
    node_def(
        name,
        "Const",
        vec![],
        vec![
            ("dtype", attr(AttrKind::Type(TfDType::String.code()))),
            ("value", attr(AttrKind::Tensor(t))),
        ],
    )
}

fn node_def(name: &str, op: &str, input: Vec<String>, attrs: Vec<(&str, AttrValue)>) -> NodeDef {
    NodeDef {
        name: name.into(),
        op: op.into(),
        input,
        device: String::new(),
        attr: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    }
}

/// The save and restore ops of a V2 saver of `vars` (name in the checkpoint,
/// variable), as `tf.compat.v1.train.Saver` builds them under `save/`: the
/// `SaverDef` names `save/Const:0` (the prefix to feed), `save/control_dependency:0`
/// (run to save) and `save/restore_all` (run to restore).
fn saver_nodes(g: &Graph, vars: &[(String, Tensor)]) -> Vec<NodeDef> {
    let string = || attr(AttrKind::Type(TfDType::String.code()));
    let scalar = || attr(AttrKind::Shape(shape_proto(&[])));
    let k = vars.len() as i64;
    let names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    let slices: Vec<&str> = vars.iter().map(|_| "").collect();
    let dtypes = attr(AttrKind::List(ListValue {
        r#type: vars
            .iter()
            .map(|(_, v)| TfDType::of(g.dtype(*v)).code())
            .collect(),
        ..Default::default()
    }));
    let mut out = vec![
        string_const("save/filename/input", &["model"], &[]),
        node_def(
            "save/filename",
            "PlaceholderWithDefault",
            vec!["save/filename/input".into()],
            vec![("dtype", string()), ("shape", scalar())],
        ),
        node_def(
            "save/Const",
            "PlaceholderWithDefault",
            vec!["save/filename".into()],
            vec![("dtype", string()), ("shape", scalar())],
        ),
        string_const("save/SaveV2/tensor_names", &names, &[k]),
        string_const("save/SaveV2/shape_and_slices", &slices, &[k]),
    ];
    let mut save_inputs: Vec<String> = vec![
        "save/Const".into(),
        "save/SaveV2/tensor_names".into(),
        "save/SaveV2/shape_and_slices".into(),
    ];
    save_inputs.extend(vars.iter().map(|(_, v)| g.name(*v).to_string()));
    out.push(node_def(
        "save/SaveV2",
        "SaveV2",
        save_inputs,
        vec![("dtypes", dtypes.clone())],
    ));
    out.push(node_def(
        "save/control_dependency",
        "Identity",
        vec!["save/Const".into(), "^save/SaveV2".into()],
        vec![("T", string())],
    ));
    out.push(string_const("save/RestoreV2/tensor_names", &names, &[k]));
    out.push(string_const(
        "save/RestoreV2/shape_and_slices",
        &slices,
        &[k],
    ));
    out.push(node_def(
        "save/RestoreV2",
        "RestoreV2",
        vec![
            "save/Const".into(),
            "save/RestoreV2/tensor_names".into(),
            "save/RestoreV2/shape_and_slices".into(),
        ],
        vec![("dtypes", dtypes)],
    ));
    let mut assigns = Vec::new();
    for (i, (_, v)) in vars.iter().enumerate() {
        let name = if i == 0 {
            "save/Assign".to_string()
        } else {
            format!("save/Assign_{i}")
        };
        out.push(node_def(
            &name,
            "Assign",
            vec![g.name(*v).to_string(), format!("save/RestoreV2:{i}")],
            vec![
                ("T", ty(g.dtype(*v))),
                ("validate_shape", b(true)),
                ("use_locking", b(true)),
            ],
        ));
        assigns.push(format!("^{name}"));
    }
    out.push(node_def("save/restore_all", "NoOp", assigns, vec![]));
    out
}

/// The variables a default saver of `g` saves: every global variable under its name.
pub fn default_saver_vars(g: &Graph) -> Vec<(String, Tensor)> {
    g.global_variables()
        .into_iter()
        .map(|v| (g.name(v).to_string(), v))
        .collect()
}

/// The `MetaGraphDef` of `g` as the saver of `vars` (name in the checkpoint, variable)
/// writes it: the graph with that saver's ops under `save/`, its V2 `SaverDef`
/// (`max_to_keep`, `keep_checkpoint_every_n_hours` as given), and the graph's
/// collections (tensors as `name:0`, operations by name, as TF lists them).
pub fn meta_graph_def(
    g: &Graph,
    vars: &[(String, Tensor)],
    max_to_keep: i32,
    keep_hours: f32,
) -> MetaGraphDef {
    let mut collection_def = BTreeMap::new();
    for key in g.collection_keys() {
        let names: Vec<String> = g
            .collection(&key)
            .iter()
            .map(|t| {
                if g.node(*t).has_value {
                    format!("{}:0", g.name(*t))
                } else {
                    g.name(*t).to_string()
                }
            })
            .collect();
        collection_def.insert(
            key,
            CollectionDef {
                node_list: Some(NodeList { value: names }),
            },
        );
    }
    let mut graph = graph_def(g);
    graph.node.extend(saver_nodes(g, vars));
    MetaGraphDef {
        meta_info_def: Some(MetaInfoDef {
            meta_graph_version: String::new(),
            tags: vec![],
            tensorflow_version: "2.21.0".into(),
            tensorflow_git_version: "wgtrain".into(),
        }),
        graph_def: Some(graph),
        saver_def: Some(SaverDef {
            filename_tensor_name: "save/Const:0".into(),
            save_tensor_name: "save/control_dependency:0".into(),
            restore_op_name: "save/restore_all".into(),
            max_to_keep,
            sharded: false,
            keep_checkpoint_every_n_hours: keep_hours,
            version: 2,
        }),
        collection_def,
    }
}

/// Writes `graph.pbtxt` of `g` in `dir` (atomically).
pub fn write_graph_pbtxt(dir: &std::path::Path, g: &Graph) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), &e))?;
    crate::bundle::write_atomic(
        &dir.join("graph.pbtxt"),
        to_pbtxt(&graph_def(g)).as_bytes(),
        &mut crate::bundle::NoFault,
        "graph.pbtxt",
    )
}

/// The events TF's `FileWriter(graph=…)` writes first: the `graph_def` and the
/// `meta_graph_def`, at step 0.
pub fn graph_events(g: &Graph) -> Vec<crate::proto::Event> {
    use prost::Message;
    vec![
        crate::events::event(
            0,
            crate::proto::What::GraphDef(graph_def(g).encode_to_vec()),
        ),
        crate::events::event(
            0,
            crate::proto::What::MetaGraphDef(
                meta_graph_def(g, &default_saver_vars(g), 5, 10_000.0).encode_to_vec(),
            ),
        ),
    ]
}

/// A [`Saver`](crate::Saver) exporter writing the `MetaGraphDef` of `g` as
/// `<checkpoint>.meta`.
pub fn meta_exporter(
    g: std::sync::Arc<Graph>,
    vars: &[(String, Tensor)],
    max_to_keep: i32,
    keep_hours: f32,
) -> crate::saver::MetaExporter {
    use prost::Message;
    let bytes = meta_graph_def(&g, vars, max_to_keep, keep_hours).encode_to_vec();
    std::sync::Arc::new(move |path: &std::path::Path| {
        crate::bundle::write_atomic(path, &bytes, &mut crate::bundle::NoFault, "meta graph")
    })
}
