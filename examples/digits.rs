//! Trains a classifier on the UCI handwritten digits (embedded in the library) and
//! prints the held-out accuracy.
//!
//! `cargo run --release --example digits [-- --model mlp|cnn --steps N --batch N --lr X]`

use std::time::Instant;
use wgtrain::datasets::{Digits, digits};
use wgtrain::engine::rng::Stream;
use wgtrain::layers::{self, Activation};
use wgtrain::{Adam, DType, Error, Graph, Padding, Session, SessionConfig, Tensor};

/// Fraction of the examples held out, and the seed of the split.
const HELD_OUT: f64 = 0.2;
const SPLIT_SEED: u64 = 7;

fn arg(args: &[String], flag: &str, default: f64) -> wgtrain::Result<f64> {
    match args.iter().position(|a| a == flag) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::invalid_argument(format!("{flag} needs a number"))),
    }
}

/// The logits of the model over `x` (`[batch, 64]` for the MLP, `[batch, 8, 8, 1]` for
/// the CNN).
fn model(g: &mut Graph, x: Tensor, cnn: bool) -> wgtrain::Result<Tensor> {
    if !cnn {
        let h = layers::dense(g, x, 64, Activation::Relu, "hidden")?;
        return layers::dense(g, h, 10, Activation::Linear, "logits");
    }
    let same = Padding::Same;
    let c = layers::conv2d(g, x, 16, [3, 3], [1, 1], same, Activation::Relu, "conv1")?;
    let p = layers::max_pool2d(g, c, [2, 2], [2, 2], same)?;
    let c = layers::conv2d(g, p, 32, [3, 3], [1, 1], same, Activation::Relu, "conv2")?;
    let p = layers::max_pool2d(g, c, [2, 2], [2, 2], same)?;
    let f = layers::flatten(g, p)?;
    let h = layers::dense(g, f, 64, Activation::Relu, "hidden")?;
    layers::dense(g, h, 10, Activation::Linear, "logits")
}

fn main() -> wgtrain::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let cnn = match args.iter().position(|a| a == "--model") {
        None => false,
        Some(i) => match args.get(i + 1).map(String::as_str) {
            Some("mlp") => false,
            Some("cnn") => true,
            _ => return Err(Error::invalid_argument("--model is mlp or cnn")),
        },
    };
    let steps = arg(&args, "--steps", if cnn { 1000.0 } else { 1500.0 })? as usize;
    let batch = arg(&args, "--batch", 64.0)? as usize;
    let lr = arg(&args, "--lr", if cnn { 2e-3 } else { 3e-3 })? as f32;
    let split = digits()?.split(HELD_OUT, SPLIT_SEED);

    let mut g = Graph::new();
    g.set_seed(0);
    let x = if cnn {
        g.placeholder("x", DType::F32, &[-1, 8, 8, 1])?
    } else {
        g.placeholder("x", DType::F32, &[-1, 64])?
    };
    let y = g.placeholder("y", DType::I32, &[-1])?;
    let logits = model(&mut g, x, cnn)?;
    let loss = g.sparse_softmax_cross_entropy_mean(logits, y)?;
    let pred = g.argmax(logits, 1)?;
    let correct = g.equal(pred, y)?;
    let correct = g.cast(correct, DType::F32)?;
    let accuracy = g.reduce_mean(correct, &[], false)?;
    let step = g.global_step()?;
    let train = Adam::new(lr).minimize(&mut g, loss, step)?;
    let init = g.global_variables_initializer()?;
    g.finalize();

    let mut sess = Session::new(g, SessionConfig::default())?;
    println!(
        "device: {} ({}); model: {}",
        sess.adapter().name,
        sess.adapter().backend,
        if cnn { "cnn" } else { "mlp" }
    );
    sess.run(&[], &[], &[init])?;
    let mut rng = Stream::new((0, 1));
    let started = Instant::now();
    let n = split.train.len();
    for s in 1..=steps {
        let rows: Vec<usize> = (0..batch)
            .map(|_| ((rng.uniform() * n as f64) as usize).min(n - 1))
            .collect();
        let (bx, by) = split.train.batch(&rows, cnn)?;
        let feeds = [(x, bx), (y, by)];
        if s % 250 == 0 || s == steps {
            let out = sess.run(&feeds, &[loss], &[train])?;
            println!("step {s:>5}  loss {:.4}", out[0].scalar_value()?);
        } else {
            sess.run(&feeds, &[], &[train])?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let acc = evaluate(&mut sess, &split.test, x, y, accuracy, cnn)?;
    println!(
        "{steps} steps in {secs:.1} s ({:.0} steps/s)",
        steps as f64 / secs
    );
    println!(
        "held-out accuracy: {:.2}% on {} images",
        acc * 100.0,
        split.test.len()
    );
    Ok(())
}

fn evaluate(
    sess: &mut Session,
    test: &Digits,
    x: Tensor,
    y: Tensor,
    accuracy: Tensor,
    cnn: bool,
) -> wgtrain::Result<f64> {
    let rows: Vec<usize> = (0..test.len()).collect();
    let (tx, ty) = test.batch(&rows, cnn)?;
    sess.run(&[(x, tx), (y, ty)], &[accuracy], &[])?[0].scalar_value()
}
