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
use wgtrain_engine::{DType, Graph, HostTensor, Tensor};

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
        let names = n
            .inputs
            .iter()
            .map(|t| nodes[t.index()].name.clone())
            .collect();
        let dtypes = n.inputs.iter().map(|t| nodes[t.index()].dtype).collect();
        let mut x = Export::new(&n.name, n.op.tf_name(), n.dtype, &n.shape, names, dtypes);
        n.op.export(&mut x);
        let (extra, mut node) = x.finish();
        node.inputs.extend(
            n.control_inputs
                .iter()
                .map(|c| format!("^{}", nodes[c.index()].name)),
        );
        out.extend(extra.into_iter().map(node_def_of));
        out.push(node_def_of(node));
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
