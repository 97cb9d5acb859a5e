//! Writes what `tools/tf_interop.py` checks TensorFlow against: for the digits CNN and
//! MLP, a run of the examples' training loop (checkpoints, `.meta`, `graph.pbtxt`,
//! event files) in `<dir>/<model>`, then, from its latest checkpoint, the loss on a
//! fixed batch and ten more Adam steps on it (`interop.json`: the batch, the node
//! names, the losses; `after/model.ckpt-N`: the variables after the ten steps).
//!
//! `cargo run --release --example tf_interop -- DIR && python tools/tf_interop.py DIR`

use std::path::PathBuf;
use wgtrain::checkpoint::{Saver, SaverOptions, latest_checkpoint};
use wgtrain::classifier::{Model, Options, Progress, network, train};
use wgtrain::datasets::digits;
use wgtrain::{Error, Result, Session};

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

fn run(dir: &std::path::Path) -> Result<()> {
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
