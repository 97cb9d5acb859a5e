//! Graph export: TF's `graph.pbtxt` and `.meta` parse as their manifest says; a wgtrain
//! graph exports with TF's op names and parses back from its text form unchanged.

#![allow(clippy::unwrap_used)]

mod common;
use common::testdata;
use prost::Message;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use wgtrain_checkpoint::graph_export::{graph_def, meta_graph_def, parse_pbtxt, to_pbtxt};
use wgtrain_checkpoint::proto::{AttrKind, MetaGraphDef};
use wgtrain_engine::layers::{self, Activation};
use wgtrain_engine::{Adam, DType, Graph, Padding};

#[test]
fn tfs_graph_pbtxt_and_meta_parse_as_the_manifest_says() {
    let m: Value = serde_json::from_str(
        &std::fs::read_to_string(testdata().join("ckpt_manifest.json")).unwrap(),
    )
    .unwrap();
    let want = &m["graph_pbtxt"];
    let text = std::fs::read_to_string(testdata().join("ckpt/graph.pbtxt")).unwrap();
    let g = parse_pbtxt(&text).unwrap();
    assert_eq!(g.node.len() as u64, want["num_nodes"].as_u64().unwrap());
    let v = g.versions.as_ref().unwrap();
    assert_eq!(
        i64::from(v.producer),
        want["versions"]["producer"].as_i64().unwrap()
    );
    assert_eq!(
        i64::from(v.min_consumer),
        want["versions"]["min_consumer"].as_i64().unwrap()
    );
    let mut hist: BTreeMap<String, u64> = BTreeMap::new();
    for n in &g.node {
        *hist.entry(n.op.clone()).or_default() += 1;
    }
    let want_hist: BTreeMap<String, u64> = want["op_histogram"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    assert_eq!(hist, want_hist);
    let vars: Vec<&str> = g
        .node
        .iter()
        .filter(|n| n.op == "VarHandleOp")
        .map(|n| n.name.as_str())
        .collect();
    let mut vars = vars;
    vars.sort();
    let want_vars: Vec<&str> = want["variable_nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(vars, want_vars);
    // The binary .meta: the same graph, and the SaverDef the manifest lists.
    let meta = MetaGraphDef::decode(
        std::fs::read(testdata().join("ckpt/model.ckpt-3.meta"))
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    let mg = meta.graph_def.as_ref().unwrap();
    assert_eq!(mg.node.len(), g.node.len());
    let names: HashSet<&str> = mg.node.iter().map(|n| n.name.as_str()).collect();
    assert!(g.node.iter().all(|n| names.contains(n.name.as_str())));
    let sd = meta.saver_def.as_ref().unwrap();
    let wsd = &m["checkpoints"]["model.ckpt-3"]["meta"]["saver_def"];
    assert_eq!(
        sd.filename_tensor_name,
        wsd["filename_tensor_name"].as_str().unwrap()
    );
    assert_eq!(
        sd.save_tensor_name,
        wsd["save_tensor_name"].as_str().unwrap()
    );
    assert_eq!(sd.restore_op_name, wsd["restore_op_name"].as_str().unwrap());
    assert_eq!(
        i64::from(sd.max_to_keep),
        wsd["max_to_keep"].as_i64().unwrap()
    );
    assert_eq!(sd.sharded, wsd["sharded"].as_bool().unwrap());
    assert_eq!(sd.version, 2);
    let keys: Vec<&str> = meta.collection_def.keys().map(String::as_str).collect();
    let want_keys: Vec<&str> = m["checkpoints"]["model.ckpt-3"]["meta"]["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(keys, want_keys);
}

fn model() -> Graph {
    let mut g = Graph::new();
    let x = g.placeholder("x", DType::F32, &[-1, 8, 8, 1]).unwrap();
    let y = g.placeholder("y", DType::I32, &[-1]).unwrap();
    let c = layers::conv2d(
        &mut g,
        x,
        4,
        [3, 3],
        [1, 1],
        Padding::Same,
        Activation::Relu,
        "conv1",
    )
    .unwrap();
    let p = layers::max_pool2d(&mut g, c, [2, 2], [2, 2], Padding::Valid).unwrap();
    let f = layers::flatten(&mut g, p).unwrap();
    let h = layers::dense(&mut g, f, 10, Activation::Linear, "logits").unwrap();
    let loss = g.sparse_softmax_cross_entropy_mean(h, y).unwrap();
    let step = g.global_step().unwrap();
    Adam::new(1e-3).minimize(&mut g, loss, step).unwrap();
    g.global_variables_initializer().unwrap();
    g
}

#[test]
fn a_wgtrain_graph_exports_with_tf_ops_and_round_trips_through_text() {
    let g = model();
    let gd = graph_def(&g);
    // Every input names a node.
    let names: HashSet<&str> = gd.node.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names.len(), gd.node.len(), "unique names");
    for n in &gd.node {
        for i in &n.input {
            let i = i.trim_start_matches('^');
            let i = i.split(':').next().unwrap();
            assert!(names.contains(i), "{} input {i}", n.name);
        }
    }
    // Every op is one TF registers (tools/tf_interop.py has TF import it in CI).
    const TF_OPS: &[&str] = &[
        "AddV2",
        "ApplyAdam",
        "ArgMax",
        "Assign",
        "AssignAdd",
        "BiasAdd",
        "BroadcastGradientArgs",
        "BroadcastTo",
        "Cast",
        "Const",
        "Conv2D",
        "Conv2DBackpropFilter",
        "Conv2DBackpropInput",
        "Equal",
        "ExpandDims",
        "FloorDiv",
        "Identity",
        "MatMul",
        "MaxPool",
        "MaxPoolGrad",
        "Mean",
        "Mul",
        "NoOp",
        "Placeholder",
        "RandomUniform",
        "RealDiv",
        "Relu",
        "ReluGrad",
        "Reshape",
        "Shape",
        "Size",
        "SparseSoftmaxCrossEntropyWithLogits",
        "Sqrt",
        "Sub",
        "Sum",
        "VariableV2",
    ];
    for n in &gd.node {
        assert!(TF_OPS.contains(&n.op.as_str()), "{} is a {}", n.name, n.op);
    }
    // TF's inputs: ApplyAdam takes its hyperparameters as inputs, and waits for every
    // gradient of the step.
    let adam = gd.node.iter().find(|n| n.op == "ApplyAdam").unwrap();
    assert_eq!(
        adam.input.iter().filter(|i| !i.starts_with('^')).count(),
        10
    );
    assert!(
        adam.input.contains(&"^Adam/gate_gradients".to_string()),
        "{:?}",
        adam.input
    );
    // A slot's initializer is under the slot, as TF names it.
    assert!(
        names.contains("conv1/kernel/Adam/Initializer/zeros"),
        "{names:?}"
    );
    let op = |name: &str| gd.node.iter().find(|n| n.name == name).unwrap();
    assert_eq!(op("x").op, "Placeholder");
    assert_eq!(op("conv1/kernel").op, "VariableV2");
    assert_eq!(op("conv1/Conv2D").op, "Conv2D");
    let conv = op("conv1/Conv2D");
    assert_eq!(
        conv.attr["padding"].value,
        Some(AttrKind::S(b"SAME".to_vec()))
    );
    assert_eq!(op("logits/MatMul").op, "MatMul");
    assert!(gd.node.iter().any(|n| n.op == "ApplyAdam"));
    assert!(
        gd.node
            .iter()
            .any(|n| n.op == "SparseSoftmaxCrossEntropyWithLogits")
    );
    assert!(gd.node.iter().any(|n| n.op == "MaxPool"));
    // Text and binary forms give back the same GraphDef.
    let text = to_pbtxt(&gd);
    assert_eq!(parse_pbtxt(&text).unwrap(), gd);
    let bytes = gd.encode_to_vec();
    assert_eq!(
        wgtrain_checkpoint::proto::GraphDef::decode(bytes.as_slice()).unwrap(),
        gd
    );
    let meta = meta_graph_def(
        &g,
        &wgtrain_checkpoint::graph_export::default_saver_vars(&g),
        5,
        10000.0,
    );
    let back = MetaGraphDef::decode(meta.encode_to_vec().as_slice()).unwrap();
    assert_eq!(back, meta);
    assert!(meta.collection_def.contains_key("trainable_variables"));
    assert!(parse_pbtxt("node { name: \"x\" op: ").is_err());
}
