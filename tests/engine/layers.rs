//! The layers module (TF names, training flags, update ops) and streaming metrics
//! (local variables), against the reference interpreter.

use crate::common::*;
use wgtrain::engine::collections;
use wgtrain::layers::{self, Activation};
use wgtrain::metrics;
use wgtrain::{Adam, Code, DType, Graph, HostTensor, Padding, Reference, Tensor};

/// Runs `steps` training steps on the reference and the device with the same feeds,
/// comparing `watch` after each.
fn train_matches(
    g: Graph,
    train: wgtrain::Operation,
    feeds: impl Fn(u64) -> Vec<(Tensor, HostTensor)>,
    watch: &[Tensor],
    steps: u64,
) {
    let mut g = g;
    let init = g.global_variables_initializer().unwrap();
    let g = std::sync::Arc::new(g);
    let mut r = Reference::new(g.clone());
    let Some(mut s) = gpu_session_arc(g.clone()) else {
        return;
    };
    r.run(&[], &[], &[init]).unwrap();
    s.run(&[], &[], &[init]).unwrap();
    for k in 0..steps {
        let f = feeds(k);
        r.run(&f, &[], &[train]).unwrap();
        s.run(&f, &[], &[train]).unwrap();
        let want = r.run(&[], watch, &[]).unwrap();
        let got = s.read_variables(watch).unwrap();
        for ((a, b), t) in got.iter().zip(&want).zip(watch) {
            assert_close(&format!("step {k} {}", g.name(*t)), a, b, 2e-4);
        }
    }
}

#[test]
fn layers_create_tf_named_variables() {
    let mut g = Graph::new();
    let x = g.placeholder("x", DType::F32, &[-1, 6, 6, 2]).unwrap();
    let t = g.placeholder("training", DType::Bool, &[]).unwrap();
    let c = layers::conv2d(
        &mut g,
        x,
        4,
        [3, 3],
        [1, 1],
        Padding::Same,
        Activation::Relu,
        "",
    )
    .unwrap();
    let c = layers::batch_norm(&mut g, c, t, 0.99, 1e-3, "").unwrap();
    let f = layers::flatten(&mut g, c).unwrap();
    let d = layers::dense(&mut g, f, 8, Activation::Tanh, "").unwrap();
    let d = layers::layer_norm(&mut g, d, 1e-3, "").unwrap();
    let d = layers::dropout(&mut g, d, 0.5, t, "").unwrap();
    let _ = layers::dense(&mut g, d, 3, Activation::Linear, "").unwrap();
    let ids = g.placeholder("ids", DType::I32, &[-1, 5]).unwrap();
    let e = layers::embedding(&mut g, ids, 100, 16, "").unwrap();
    assert_eq!(g.shape(e), &[-1, 5, 16]);
    for name in [
        "conv2d/kernel",
        "conv2d/bias",
        "batch_normalization/gamma",
        "batch_normalization/beta",
        "batch_normalization/moving_mean",
        "batch_normalization/moving_variance",
        "dense/kernel",
        "dense_1/kernel",
        "dense_1/bias",
        "LayerNorm/gamma",
        "LayerNorm/beta",
        "embedding/embeddings",
    ] {
        assert!(g.by_name(name).is_some(), "missing {name}");
    }
    let trainable = g.trainable_variables();
    let mm = g.by_name("batch_normalization/moving_mean").unwrap();
    assert!(!trainable.contains(&mm));
    assert!(g.global_variables().contains(&mm));
    assert_eq!(g.collection(collections::UPDATE_OPS).len(), 2);
    // A flag that is not a bool scalar is rejected.
    let bad = g.placeholder("bad", DType::F32, &[]).unwrap();
    let e = layers::dropout(&mut g, d, 0.5, bad, "").unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument);
}

#[test]
fn cnn_with_batch_norm_layer_norm_and_dropout_trains_as_the_reference() {
    let mut g = Graph::new();
    g.set_seed(4);
    let x = g.placeholder("x", DType::F32, &[-1, 5, 5, 2]).unwrap();
    let y = g.placeholder("y", DType::I32, &[-1]).unwrap();
    let t = g
        .constant(HostTensor::from_bool(&[], vec![true]).unwrap(), "training")
        .unwrap();
    let c = layers::conv2d(
        &mut g,
        x,
        3,
        [3, 3],
        [2, 2],
        Padding::Same,
        Activation::Linear,
        "",
    )
    .unwrap();
    let c = layers::batch_norm(&mut g, c, t, 0.9, 1e-3, "bn").unwrap();
    let c = g.relu(c).unwrap();
    let p = layers::avg_pool2d(&mut g, c, [2, 2], [1, 1], Padding::Valid).unwrap();
    let f = layers::flatten(&mut g, p).unwrap();
    let h = layers::dense(&mut g, f, 6, Activation::Sigmoid, "").unwrap();
    let h = layers::layer_norm(&mut g, h, 1e-3, "ln").unwrap();
    let h = layers::dropout(&mut g, h, 0.25, t, "").unwrap();
    let logits = layers::dense(&mut g, h, 3, Activation::Linear, "").unwrap();
    let loss = g.sparse_softmax_cross_entropy_mean(logits, y).unwrap();
    let step = g.global_step().unwrap();
    // Plain SGD: the conv bias before batch norm has a zero gradient in exact math,
    // which Adam would turn float noise into full-size steps of.
    let train = wgtrain::Sgd::new(0.1).minimize(&mut g, loss, step).unwrap();
    let watch: Vec<Tensor> = g
        .global_variables()
        .into_iter()
        .filter(|v| g.dtype(*v) == DType::F32)
        .collect();
    assert!(watch.iter().any(|v| g.name(*v) == "bn/moving_variance"));
    train_matches(
        g,
        train,
        |k| {
            let mut r = rng(1000 + k);
            vec![
                (x, rand_f32(&mut r, &[6, 5, 5, 2], -1.0, 1.0)),
                (y, rand_i32(&mut r, &[6], 0, 3)),
            ]
        },
        &watch,
        3,
    );
}

#[test]
fn batch_norm_moves_its_statistics_only_in_training() {
    let mut g = Graph::new();
    let x = ph(&mut g, "x", &[4, 2]);
    let t = g.placeholder("training", DType::Bool, &[]).unwrap();
    let y = layers::batch_norm(&mut g, x, t, 0.5, 0.0, "bn").unwrap();
    let updates: Vec<wgtrain::Operation> = g
        .collection(collections::UPDATE_OPS)
        .iter()
        .map(|t| t.op())
        .collect();
    let mm = g.by_name("bn/moving_mean").unwrap();
    let mv = g.by_name("bn/moving_variance").unwrap();
    let init = g.global_variables_initializer().unwrap();
    let Some(mut s) = gpu(g) else {
        return;
    };
    s.run(&[], &[], &[init]).unwrap();
    let xv = HostTensor::from_f32(&[4, 2], vec![1.0, 2.0, 3.0, 2.0, 5.0, 2.0, 7.0, 2.0]).unwrap();
    let flag = |b: bool| HostTensor::from_bool(&[], vec![b]).unwrap();
    // Training: normalized by the batch (mean 4, variance 5 in column 0; column 1 has
    // no spread), and the moving statistics move halfway.
    let out = s
        .run(&[(x, xv.clone()), (t, flag(true))], &[y], &updates)
        .unwrap();
    let yv = out[0].as_f32().unwrap();
    let sd = 5f32.sqrt();
    for (i, want) in [-3.0 / sd, -1.0 / sd, 1.0 / sd, 3.0 / sd]
        .iter()
        .enumerate()
    {
        assert!((yv[2 * i] - want).abs() < 1e-5, "{yv:?}");
    }
    let stats = s.read_variables(&[mm, mv]).unwrap();
    assert_eq!(stats[0].as_f32().unwrap(), vec![2.0, 1.0]);
    assert_eq!(stats[1].as_f32().unwrap(), vec![3.0, 0.5]);
    // Inference: normalized by the moving statistics, which stay.
    let out = s.run(&[(x, xv), (t, flag(false))], &[y], &updates).unwrap();
    let yv = out[0].as_f32().unwrap();
    assert!((yv[0] - (1.0 - 2.0) / 3f32.sqrt()).abs() < 1e-5, "{yv:?}");
    let stats = s.read_variables(&[mm, mv]).unwrap();
    assert_eq!(stats[0].as_f32().unwrap(), vec![2.0, 1.0]);
}

#[test]
fn dropout_layer_follows_the_flag_and_the_global_step() {
    let mut g = Graph::new();
    g.set_seed(1);
    let x = ph(&mut g, "x", &[200]);
    let t = g.placeholder("training", DType::Bool, &[]).unwrap();
    let y = layers::dropout(&mut g, x, 0.5, t, "").unwrap();
    let step = g.global_step().unwrap();
    let one = g.constant(HostTensor::scalar_i64(1), "one").unwrap();
    let tick = g.assign_add(step, one).unwrap();
    let init = g.global_variables_initializer().unwrap();
    let Some(mut s) = gpu(g) else {
        return;
    };
    s.run(&[], &[], &[init]).unwrap();
    let ones = HostTensor::from_f32(&[200], vec![1.0; 200]).unwrap();
    let flag = |b: bool| HostTensor::from_bool(&[], vec![b]).unwrap();
    let mut run = |b: bool| {
        s.run(&[(x, ones.clone()), (t, flag(b))], &[y], &[])
            .unwrap()
            .remove(0)
            .as_f32()
            .unwrap()
    };
    assert_eq!(run(false), vec![1.0; 200]);
    let a = run(true);
    assert_eq!(a, run(true));
    assert!(a.contains(&0.0) && a.contains(&2.0));
    s.run(&[], &[], &[tick.op()]).unwrap();
    let mut run2 = |b: bool| {
        s.run(&[(x, ones.clone()), (t, flag(b))], &[y], &[])
            .unwrap()
            .remove(0)
            .as_f32()
            .unwrap()
    };
    assert_ne!(a, run2(true));
}

#[test]
fn embedding_trains_as_the_reference() {
    let mut g = Graph::new();
    g.set_seed(8);
    let ids = g.placeholder("ids", DType::I32, &[-1, 3]).unwrap();
    let y = g.placeholder("y", DType::I32, &[-1]).unwrap();
    let e = layers::embedding(&mut g, ids, 11, 4, "").unwrap();
    let f = layers::flatten(&mut g, e).unwrap();
    let logits = layers::dense(&mut g, f, 2, Activation::Linear, "").unwrap();
    let loss = g.sparse_softmax_cross_entropy_mean(logits, y).unwrap();
    let train = Adam::new(0.05).minimize(&mut g, loss, None).unwrap();
    let table = g.by_name("embedding/embeddings").unwrap();
    train_matches(
        g,
        train,
        |k| {
            let mut r = rng(1100 + k);
            vec![
                (ids, rand_i32(&mut r, &[5, 3], 0, 11)),
                (y, rand_i32(&mut r, &[5], 0, 2)),
            ]
        },
        &[table],
        3,
    );
}

#[test]
fn streaming_metrics_accumulate_in_local_variables() {
    let mut g = Graph::new();
    let labels = g.placeholder("labels", DType::I32, &[-1]).unwrap();
    let pred = g.placeholder("pred", DType::I32, &[-1]).unwrap();
    let v = ph(&mut g, "v", &[2]);
    let acc = metrics::accuracy(&mut g, labels, pred, "").unwrap();
    let mean = metrics::mean(&mut g, v, "").unwrap();
    let mt = metrics::mean_tensor(&mut g, v, "per_elem").unwrap();
    for name in [
        "accuracy/total",
        "accuracy/count",
        "mean/total",
        "mean/count",
        "per_elem/total_tensor",
        "per_elem/count_tensor",
    ] {
        let t = g.by_name(name).unwrap_or_else(|| panic!("{name}"));
        assert!(metrics::is_local(&g, t), "{name}");
        assert!(!g.global_variables().contains(&t), "{name}");
    }
    assert!(g.global_variables().is_empty());
    let local_init = g.local_variables_initializer().unwrap();
    let Some(mut s) = gpu(g) else {
        return;
    };
    s.run(&[], &[], &[local_init]).unwrap();
    let i32s = |v: Vec<i32>| HostTensor::from_i32(&[v.len()], v).unwrap();
    let f32s = |v: Vec<f32>| HostTensor::from_f32(&[v.len()], v).unwrap();
    let before = s.run(&[], &[acc.value, mean.value], &[]).unwrap();
    assert_eq!(before[0].as_f32().unwrap(), vec![0.0]);
    let feeds = |l: Vec<i32>, p: Vec<i32>, x: Vec<f32>| {
        vec![(labels, i32s(l)), (pred, i32s(p)), (v, f32s(x))]
    };
    let u1 = s
        .run(
            &feeds(vec![1, 2, 3, 4], vec![1, 0, 3, 0], vec![1.0, 3.0]),
            &[acc.update, mean.update, mt.update],
            &[],
        )
        .unwrap();
    assert_eq!(u1[0].as_f32().unwrap(), vec![0.5]);
    assert_eq!(u1[1].as_f32().unwrap(), vec![2.0]);
    let u2 = s
        .run(
            &feeds(vec![5, 6], vec![5, 6], vec![5.0, 7.0]),
            &[acc.update, mean.update, mt.update],
            &[],
        )
        .unwrap();
    assert!((u2[0].as_f32().unwrap()[0] - 4.0 / 6.0).abs() < 1e-6);
    assert_eq!(u2[1].as_f32().unwrap(), vec![4.0]);
    assert_eq!(u2[2].as_f32().unwrap(), vec![3.0, 5.0]);
    let now = s.run(&[], &[acc.value, mean.value, mt.value], &[]).unwrap();
    assert!((now[0].as_f32().unwrap()[0] - 4.0 / 6.0).abs() < 1e-6);
    // The local init resets them.
    s.run(&[], &[], &[local_init]).unwrap();
    let reset = s.run(&[], &[acc.value, mt.value], &[]).unwrap();
    assert_eq!(reset[0].as_f32().unwrap(), vec![0.0]);
    assert_eq!(reset[1].as_f32().unwrap(), vec![0.0, 0.0]);
}

#[test]
fn optimizer_slots_under_update_ops_initialize_without_feeds() {
    // `minimize` creates Adam's slots under the update ops' control dependencies; their
    // initializers must not depend on the batch.
    let mut g = Graph::new();
    let x = ph(&mut g, "x", &[4, 3]);
    let y = g.placeholder("y", DType::I32, &[-1]).unwrap();
    let t = g.placeholder("training", DType::Bool, &[]).unwrap();
    let h = layers::batch_norm(&mut g, x, t, 0.9, 1e-3, "").unwrap();
    let logits = layers::dense(&mut g, h, 2, Activation::Linear, "").unwrap();
    let loss = g.sparse_softmax_cross_entropy_mean(logits, y).unwrap();
    let _train = Adam::new(0.01).minimize(&mut g, loss, None).unwrap();
    let init = g.global_variables_initializer().unwrap();
    let Some(mut s) = gpu(g) else {
        return;
    };
    s.run(&[], &[], &[init]).unwrap();
}
