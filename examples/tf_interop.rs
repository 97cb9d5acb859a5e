//! Writes what `tools/tf_interop.py` checks TensorFlow against: for the digits CNN and
//! MLP, a run of the examples' training loop (checkpoints, `.meta`, `graph.pbtxt`,
//! event files) in `<dir>/<model>`, then, from its latest checkpoint, the loss on a
//! fixed batch and ten more Adam steps on it (`interop.json`: the batch, the node
//! names, the losses; `after/model.ckpt-N`: the variables after the ten steps).
//!
//! In `<dir>/ops`, a graph of the ops whose export TF's importer and kernels check
//! (`graph.pbtxt`), with its feeds and what wgtrain computed for each fetch
//! (`ops.json`), forward and gradients.
//!
//! `cargo run --release --example tf_interop -- DIR && python tools/tf_interop.py DIR`

use std::path::PathBuf;
use wgtrain::checkpoint::graph_export::{graph_def, to_pbtxt};
use wgtrain::checkpoint::{Saver, SaverOptions, latest_checkpoint};
use wgtrain::classifier::{Model, Options, Progress, network, train};
use wgtrain::datasets::digits;
use wgtrain::{Conv, DType, Error, Graph, HostTensor, Padding, Result, Session, Tensor, gradients};

/// Steps of the run, and the steps replayed after it on the fixed batch.
const RUN_STEPS: i64 = 30;
const REPLAY_STEPS: usize = 10;

fn main() -> std::process::ExitCode {
    let Some(dir) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: tf_interop DIR");
        return std::process::ExitCode::from(2);
    };
    match run(&dir) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Values in `[-1, 1)` from a fixed linear congruential sequence.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The ops graph (see the module doc): each op forward and its gradients, fetched.
fn ops(dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), &e))?;
    let mut g = Graph::new();
    let (xs, fs) = ([2, 7, 7, 3], [3, 3, 3, 2]);
    let x = g.placeholder("x", DType::F32, &[2, 7, 7, 3])?;
    let f = g.placeholder("f", DType::F32, &[3, 3, 3, 2])?;
    let mut outs: Vec<Tensor> = Vec::new();
    for conv in [
        Conv::new([1, 1], Padding::Same),
        Conv::new([2, 2], Padding::Valid),
        Conv::new([1, 1], Padding::Same).with_dilations([2, 2]),
    ] {
        outs.push(g.depthwise_conv2d(x, f, conv)?);
    }
    // TF 2.21's CPU kernels of the two depthwise gradients ignore dilations (its own
    // gradient of a dilated depthwise convolution goes through SpaceToBatchND), so only
    // the undilated ones are differentiated here.
    let mut loss = None;
    for &y in &outs[..2] {
        let sq = g.square(y)?;
        let s = g.reduce_sum(sq, &[], false)?;
        loss = Some(match loss {
            Some(l) => g.add(l, s)?,
            None => s,
        });
    }
    let loss = loss.ok_or_else(|| Error::internal("no outputs"))?;
    let grads = gradients(&mut g, &[loss], &[x, f], None)?;
    // GELU (TF composes it from Erf) and its gradient.
    let v = g.placeholder("v", DType::F32, &[64])?;
    let gelu = g.gelu(v)?;
    let w = g.sin(v)?;
    let weighted = g.mul(gelu, w)?;
    let gelu_loss = g.reduce_sum(weighted, &[], false)?;
    let dv = gradients(&mut g, &[gelu_loss], &[v], None)?;
    let mut fetches = outs.clone();
    fetches.push(loss);
    fetches.extend(grads.into_iter().flatten());
    fetches.push(gelu);
    fetches.extend(dv.into_iter().flatten());
    let feeds = [
        (x, HostTensor::from_f32(&xs, values(2 * 7 * 7 * 3, 1))?),
        (f, HostTensor::from_f32(&fs, values(3 * 3 * 3 * 2, 2))?),
        (
            v,
            HostTensor::from_f32(&[64], values(64, 3).iter().map(|x| x * 6.0).collect())?,
        ),
    ];
    let pbtxt = to_pbtxt(&graph_def(&g));
    let names: Vec<String> = fetches.iter().map(|&t| g.name(t).to_string()).collect();
    let mut sess = Session::new(g, Default::default())?;
    let got = sess.run(&feeds, &fetches, &[])?;
    let path = dir.join("graph.pbtxt");
    std::fs::write(&path, pbtxt).map_err(|e| Error::io(path.display(), &e))?;
    let mut json = String::from("{\"feeds\": {");
    for (i, (t, v)) in feeds.iter().enumerate() {
        let sep = if i > 0 { ", " } else { "" };
        let name = if *t == x {
            "x"
        } else if *t == f {
            "f"
        } else {
            "v"
        };
        json += &format!(
            "{sep}{name:?}: {{\"shape\": {:?}, \"values\": {:?}}}",
            v.shape(),
            v.as_f32()?
        );
    }
    json += "}, \"fetches\": [";
    for (i, (name, v)) in names.iter().zip(&got).enumerate() {
        let sep = if i > 0 { ", " } else { "" };
        json += &format!(
            "{sep}{{\"name\": {name:?}, \"shape\": {:?}, \"values\": {:?}}}",
            v.shape(),
            v.as_f32()?
        );
    }
    json += "]}\n";
    let path = dir.join("ops.json");
    std::fs::write(&path, json).map_err(|e| Error::io(path.display(), &e))?;
    println!("ops: {} fetches in {}", names.len(), dir.display());
    Ok(())
}

fn run(dir: &std::path::Path) -> Result<()> {
    ops(&dir.join("ops"))?;
    let data = digits()?.split(0.2, 7);
    for (model, name) in [(Model::Cnn, "cnn"), (Model::Mlp, "mlp")] {
        let out = dir.join(name);
        std::fs::create_dir_all(&out).map_err(|e| Error::io(out.display(), &e))?;
        let mut opts = Options::new(model);
        opts.steps = RUN_STEPS;
        opts.save_checkpoint_steps = 10;
        opts.save_summaries_steps = 5;
        opts.progress = Progress::Quiet;
        opts.checkpoint_dir = Some(out.clone());
        let report = train(&data, &opts)?;
        let prefix = latest_checkpoint(&out)
            .ok_or_else(|| Error::not_found(format!("no checkpoint in {}", out.display())))?;

        // The replay: the run's graph, its latest checkpoint, a fixed batch.
        let cnn = model == Model::Cnn;
        let (graph, net) = network(&opts, data.train.height, data.train.width)?;
        let mut saver = Saver::new(&graph, SaverOptions::default())?;
        let gs = graph
            .get_global_step()
            .ok_or_else(|| Error::internal("no global step"))?;
        let names = |t: wgtrain::Tensor| graph.name(t).to_string();
        let (x_name, y_name, loss_name, gs_name) =
            (names(net.x), names(net.y), names(net.loss), names(gs));
        let train_name = graph.node(net.train).name.clone();
        let mut sess = Session::new(graph, opts.config.clone())?;
        saver.restore(&mut sess, &prefix)?;
        let rows: Vec<usize> = (0..64).collect();
        let (bx, by) = data.train.batch(&rows, cnn)?;
        let feeds = [(net.x, bx.clone()), (net.y, by.clone())];
        let loss0 = sess.run(&feeds, &[net.loss], &[])?[0].scalar_value()?;
        let mut losses = Vec::new();
        for _ in 0..REPLAY_STEPS {
            losses.push(sess.run(&feeds, &[net.loss], &[net.train])?[0].scalar_value()?);
        }
        let after = sess.read_variables(&[gs])?[0].scalar_value()? as i64;
        let saved = saver.save(&mut sess, out.join("after/model.ckpt"), Some(after))?;
        saver.flush()?;
        let json = format!(
            concat!(
                "{{\"checkpoint\": {:?}, \"after\": {:?}, \"x\": {:?}, \"x_name\": {:?}, ",
                "\"y\": {:?}, \"y_name\": {:?}, \"x_shape\": {:?}, \"loss\": {:?}, ",
                "\"train_op\": {:?}, \"global_step\": {:?}, \"loss0\": {:?}, \"losses\": {:?}}}\n"
            ),
            prefix.display().to_string(),
            saved.display().to_string(),
            bx.as_f32()?,
            x_name,
            by.as_i32()?,
            y_name,
            bx.shape(),
            loss_name,
            train_name,
            gs_name,
            loss0,
            losses,
        );
        let path = out.join("interop.json");
        std::fs::write(&path, json).map_err(|e| Error::io(path.display(), &e))?;
        println!(
            "{name}: trained to step {} in {}; replayed {REPLAY_STEPS} steps from {}",
            report.final_step,
            out.display(),
            prefix.display()
        );
    }
    Ok(())
}
