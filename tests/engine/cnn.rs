//! A CNN trains on the digits (8x8x1) to at least 97% held-out accuracy.

use wgtrain::datasets::digits;
use wgtrain::engine::rng::Stream;
use wgtrain::layers::{self, Activation};
use wgtrain::{Adam, DType, Graph, Padding};

#[test]
fn cnn_reaches_97_percent_on_held_out_digits() {
    let split = digits().unwrap().split(0.2, 7);
    let mut g = Graph::new();
    g.set_seed(0);
    let x = g.placeholder("x", DType::F32, &[-1, 8, 8, 1]).unwrap();
    let y = g.placeholder("y", DType::I32, &[-1]).unwrap();
    let same = Padding::Same;
    let c = layers::conv2d(
        &mut g,
        x,
        16,
        [3, 3],
        [1, 1],
        same,
        Activation::Relu,
        "conv1",
    )
    .unwrap();
    let p = layers::max_pool2d(&mut g, c, [2, 2], [2, 2], same).unwrap();
    let c = layers::conv2d(
        &mut g,
        p,
        32,
        [3, 3],
        [1, 1],
        same,
        Activation::Relu,
        "conv2",
    )
    .unwrap();
    let p = layers::max_pool2d(&mut g, c, [2, 2], [2, 2], same).unwrap();
    let f = layers::flatten(&mut g, p).unwrap();
    let h = layers::dense(&mut g, f, 64, Activation::Relu, "hidden").unwrap();
    let logits = layers::dense(&mut g, h, 10, Activation::Linear, "logits").unwrap();
    // TF's names for the layers' variables.
    for name in [
        "conv1/kernel",
        "conv1/bias",
        "conv2/kernel",
        "hidden/kernel",
        "logits/bias",
    ] {
        assert!(g.by_name(name).is_some(), "{name}");
    }
    assert_eq!(g.shape(g.by_name("conv2/kernel").unwrap()), &[3, 3, 16, 32]);
    assert_eq!(g.shape(g.by_name("hidden/kernel").unwrap()), &[128, 64]);
    let loss = g.sparse_softmax_cross_entropy_mean(logits, y).unwrap();
    let pred = g.argmax(logits, 1).unwrap();
    let correct = g.equal(pred, y).unwrap();
    let correct = g.cast(correct, DType::F32).unwrap();
    let accuracy = g.reduce_mean(correct, &[], false).unwrap();
    let step = g.global_step().unwrap();
    let train = Adam::new(2e-3).minimize(&mut g, loss, step).unwrap();
    let init = g.global_variables_initializer().unwrap();
    let Some(mut s) = crate::common::gpu(g) else {
        return;
    };
    s.run(&[], &[], &[init]).unwrap();
    let mut r = Stream::new((0, 1));
    let n = split.train.len();
    for _ in 0..1000 {
        let rows: Vec<usize> = (0..64)
            .map(|_| ((r.uniform() * n as f64) as usize).min(n - 1))
            .collect();
        let (bx, by) = split.train.batch(&rows, true).unwrap();
        s.run(&[(x, bx), (y, by)], &[], &[train]).unwrap();
    }
    let rows: Vec<usize> = (0..split.test.len()).collect();
    let (tx, ty) = split.test.batch(&rows, true).unwrap();
    let acc = s.run(&[(x, tx), (y, ty)], &[accuracy], &[]).unwrap()[0]
        .scalar_value()
        .unwrap();
    assert!(acc >= 0.97, "held-out accuracy {acc}");
}
