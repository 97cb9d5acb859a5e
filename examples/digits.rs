//! Trains a classifier on the UCI handwritten digits (embedded in the library) and
//! prints the held-out accuracy.
//!
//! `cargo run --release --example digits [-- --model mlp|cnn --steps N --batch N --lr X
//! --logdir DIR]`
//!
//! With `--logdir`, writes what TensorBoard shows (`tensorboard --logdir DIR`): the graph,
//! the loss and batch accuracy, histograms of the weights, sample digits and a note, and
//! a checkpoint with its `.meta` at the end.

use std::time::Instant;
use wgtrain::checkpoint::{Saver, SaverOptions, events, graph_export};
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
    let logdir = args
        .iter()
        .position(|a| a == "--logdir")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from);
    if logdir.is_some() {
        g.scalar_summary("loss", loss)?;
        g.scalar_summary("batch_accuracy", accuracy)?;
        // Under one scope: "weights/hidden/kernel", ...
        g.name_scope("weights", |g| {
            for v in g.trainable_variables() {
                let name = g.name(v).to_string();
                g.histogram_summary(&name, v)?;
            }
            Ok(())
        })?;
        let images = if cnn {
            x
        } else {
            g.reshape(x, &[-1, 8, 8, 1])?
        };
        g.image_summary("digits", images, 4)?;
        g.text_summary(
            "about",
            &format!(
                "wgtrain **{}** on the UCI digits, batch {batch}, Adam lr {lr}",
                if cnn { "CNN" } else { "MLP" }
            ),
        )?;
    }
    let merged = g.merge_all_summaries();
    g.finalize();

    let mut sess = Session::new(g, SessionConfig::default())?;
    println!(
        "device: {} ({}); model: {}",
        sess.adapter().name,
        sess.adapter().backend,
        if cnn { "cnn" } else { "mlp" }
    );
    sess.run(&[], &[], &[init])?;
    let graph = sess.graph_arc();
    let writer = match &logdir {
        Some(dir) => {
            let w = events::writer_for(dir)?;
            graph_export::write_graph_pbtxt(dir, &graph)?;
            for e in graph_export::graph_events(&graph) {
                w.add(e)?;
            }
            Some(w)
        }
        None => None,
    };
    let mut rng = Stream::new((0, 1));
    let started = Instant::now();
    let n = split.train.len();
    for s in 1..=steps {
        let rows: Vec<usize> = (0..batch)
            .map(|_| ((rng.uniform() * n as f64) as usize).min(n - 1))
            .collect();
        let (bx, by) = split.train.batch(&rows, cnn)?;
        let feeds = [(x, bx), (y, by)];
        if let Some(w) = writer.as_ref().filter(|_| s % 100 == 1) {
            // Summaries of the batch before the step, fetched asynchronously.
            let pending = sess.run_async(&feeds, &merged.fetches(), &[])?;
            w.add_pending(s as i64 - 1, merged.clone(), pending)?;
        }
        if s % 250 == 0 || s == steps {
            let out = sess.run(&feeds, &[loss], &[train])?;
            println!("step {s:>5}  loss {:.4}", out[0].scalar_value()?);
        } else {
            sess.run(&feeds, &[], &[train])?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let acc = evaluate(&mut sess, &split.test, x, y, accuracy, cnn)?;
    if let (Some(w), Some(dir)) = (&writer, &logdir) {
        w.add_summary(
            steps as i64,
            vec![events::scalar("held_out_accuracy", acc as f32)],
        )?;
        let mut saver = Saver::new(&graph, SaverOptions::default())?
            .with_meta_exporter(graph_export::meta_exporter(graph.clone(), 5, 10_000.0));
        let prefix = saver.save(&mut sess, dir.join("model.ckpt"), Some(steps as i64))?;
        saver.close()?;
        w.add(events::session_log(
            steps as i64,
            3,
            &prefix.display().to_string(),
        ))?;
        w.flush()?;
        println!(
            "TensorBoard: tensorboard --logdir {}  (checkpoint {})",
            dir.display(),
            prefix.display()
        );
    }
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
