//! An image classifier trained through [`MonitoredTrainingSession`]: the core of the
//! `digits` and `mnist` examples, and what their tests run.
//!
//! [`train`] builds an MLP or a CNN over [`Images`], trains it with Adam on random
//! batches until [`StopAtStepHook`] stops it, with checkpoints and summaries in the
//! checkpoint directory (restored from there when a checkpoint exists, so a second run
//! continues the first), then measures the held-out accuracy.

use crate::datasets::{Images, Split};
use crate::hooks::{
    LoggingTensorHook, Master, NanTensorHook, ProgressBarHook, SessionRunHook, SystemClock,
};
use crate::layers::{self, Activation};
use crate::{
    Adam, DType, Graph, MonitoredTrainingSession, Padding, Result, SessionConfig, StopAtStepHook,
    Tensor,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use wgtrain_checkpoint::{checkpoints_newest_first, events, latest_checkpoint};
use wgtrain_engine::rng::Stream;

/// The model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// Dense 64 (ReLU), dense 10.
    Mlp,
    /// Conv 3x3x16, max-pool 2x2, conv 3x3x32, max-pool 2x2, dense 64, dense 10 (all
    /// ReLU but the last).
    Cnn,
}

/// How training shows its progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// A progress bar with steps/s and the loss (for a terminal).
    Bar,
    /// Log lines through `tracing`: the loss every 100 steps and the step counter's
    /// `global_step/sec`.
    Log,
    /// Nothing.
    Quiet,
}

/// What to train and where.
#[derive(Clone, Debug)]
pub struct Options {
    /// The model.
    pub model: Model,
    /// Steps to train in this run (a restored run continues from its checkpoint).
    pub steps: i64,
    /// Examples per step.
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f32,
    /// Where checkpoints and summaries go (and are restored from); none: neither.
    pub checkpoint_dir: Option<PathBuf>,
    /// Steps between checkpoints.
    pub save_checkpoint_steps: i64,
    /// Steps between summaries.
    pub save_summaries_steps: i64,
    /// The device.
    pub config: SessionConfig,
    /// How progress shows.
    pub progress: Progress,
    /// Seeds the weights and the batches.
    pub seed: u64,
    /// Where it trains: this process, or one rank of an MPI job (`Master::Mpi`, cargo
    /// feature `mpi`), each rank drawing `batch / ranks` examples a step from its own
    /// 1/ranks of the training set.
    pub master: Master,
}

impl Options {
    /// The defaults for `model`: 1500 steps of 64 for the MLP (Adam 3e-3), 1000 for
    /// the CNN (2e-3), a checkpoint every 500 steps, summaries every 100.
    pub fn new(model: Model) -> Options {
        let cnn = model == Model::Cnn;
        Options {
            model,
            steps: if cnn { 1000 } else { 1500 },
            batch: 64,
            lr: if cnn { 2e-3 } else { 3e-3 },
            checkpoint_dir: None,
            save_checkpoint_steps: 500,
            save_summaries_steps: 100,
            config: SessionConfig::default(),
            progress: Progress::Quiet,
            seed: 0,
            master: Master::Local,
        }
    }
}

/// What a training run did.
#[derive(Clone, Debug)]
pub struct Report {
    /// The adapter the session ran on.
    pub adapter: String,
    /// The checkpoint the run started from, if any.
    pub restored_from: Option<PathBuf>,
    /// The global step at the start and at the end.
    pub start_step: i64,
    /// The global step at the end.
    pub final_step: i64,
    /// (global step, loss) of the steps whose loss was read back (about 20 a run).
    pub losses: Vec<(i64, f32)>,
    /// Accuracy on the held-out examples, in [0, 1].
    pub held_out_accuracy: f64,
    /// Seconds of training (without the evaluation).
    pub secs: f64,
    /// The latest checkpoint after the run.
    pub checkpoint: Option<PathBuf>,
    /// This process's rank and the number of ranks (0 and 1 in one process).
    pub rank: usize,
    /// Ranks that trained together.
    pub ranks: usize,
}

/// The handles of a classifier's graph.
#[derive(Clone, Copy, Debug)]
pub struct Net {
    /// The images placeholder (`[batch, h, w, 1]` for the CNN, `[batch, h*w]` else).
    pub x: Tensor,
    /// The labels placeholder (int32).
    pub y: Tensor,
    /// The mean cross-entropy.
    pub loss: Tensor,
    /// The number of correct predictions in the batch.
    pub correct: Tensor,
    /// One Adam step (and the global step's increment).
    pub train: crate::Operation,
}

/// The graph [`train`] runs for `opts` over `height x width` images, and its handles:
/// the same nodes and names, so a checkpoint of a run restores into it.
pub fn network(opts: &Options, height: usize, width: usize) -> Result<(Graph, Net)> {
    net(opts.model, height, width, opts.lr, opts.seed)
}

/// The graph of a classifier over `height x width` images, and its handles.
fn net(model: Model, height: usize, width: usize, lr: f32, seed: u64) -> Result<(Graph, Net)> {
    let mut g = Graph::new();
    g.set_seed(seed);
    let (h, w) = (height as i64, width as i64);
    let cnn = model == Model::Cnn;
    let x = if cnn {
        g.placeholder("x", DType::F32, &[-1, h, w, 1])?
    } else {
        g.placeholder("x", DType::F32, &[-1, h * w])?
    };
    let y = g.placeholder("y", DType::I32, &[-1])?;
    let logits = if cnn {
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
        )?;
        let p = layers::max_pool2d(&mut g, c, [2, 2], [2, 2], same)?;
        let c = layers::conv2d(
            &mut g,
            p,
            32,
            [3, 3],
            [1, 1],
            same,
            Activation::Relu,
            "conv2",
        )?;
        let p = layers::max_pool2d(&mut g, c, [2, 2], [2, 2], same)?;
        let f = layers::flatten(&mut g, p)?;
        let hidden = layers::dense(&mut g, f, 64, Activation::Relu, "hidden")?;
        layers::dense(&mut g, hidden, 10, Activation::Linear, "logits")?
    } else {
        let hidden = layers::dense(&mut g, x, 64, Activation::Relu, "hidden")?;
        layers::dense(&mut g, hidden, 10, Activation::Linear, "logits")?
    };
    let loss = g.sparse_softmax_cross_entropy_mean(logits, y)?;
    let pred = g.argmax(logits, 1)?;
    let eq = g.equal(pred, y)?;
    let eq = g.cast(eq, DType::F32)?;
    let correct = g.reduce_sum(eq, &[], false)?;
    let accuracy = g.reduce_mean(eq, &[], false)?;
    let step = g.global_step()?;
    let train = Adam::new(lr).minimize(&mut g, loss, step)?;
    g.scalar_summary("loss", loss)?;
    g.scalar_summary("batch_accuracy", accuracy)?;
    // "weights/hidden/kernel", ...
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
        g.reshape(x, &[-1, h, w, 1])?
    };
    g.image_summary("images", images, 4)?;
    g.text_summary(
        "about",
        &format!(
            "wgtrain **{}** on {height}x{width} images, Adam lr {lr}",
            if cnn { "CNN" } else { "MLP" }
        ),
    )?;
    Ok((
        g,
        Net {
            x,
            y,
            loss,
            correct,
            train,
        },
    ))
}

/// The run directory the digits example gives `model` by default: each model its own
/// (`runs/digits` for the CNN, `runs/digits-mlp` for the MLP), so a second model never
/// meets the first's checkpoints.
pub fn default_run_dir(model: Model) -> PathBuf {
    PathBuf::from(match model {
        Model::Cnn => "runs/digits",
        Model::Mlp => "runs/digits-mlp",
    })
}

/// The checkpoint a run with `opts` would resume from (the latest in its directory),
/// checked to hold this model's variables with their shapes, before anything starts:
/// a directory of another model's checkpoints is InvalidArgument naming the first
/// variable that differs (the restore would fail the same way, later).
pub fn resumable(data: &Split, opts: &Options) -> Result<Option<PathBuf>> {
    let Some(prefix) = opts.checkpoint_dir.as_ref().and_then(latest_checkpoint) else {
        return Ok(None);
    };
    let (graph, _) = net(
        opts.model,
        data.train.height,
        data.train.width,
        opts.lr,
        opts.seed,
    )?;
    let reader = wgtrain_checkpoint::BundleReader::open(&prefix)?;
    let dims = |d: &[usize]| format!("{d:?}");
    for v in graph.global_variables() {
        let name = graph.name(v);
        let here: Vec<usize> = graph.shape(v).iter().map(|&d| d.max(0) as usize).collect();
        let there = reader
            .list()
            .into_iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, shape)| shape);
        let differs = match &there {
            None => Some(format!("'{name}' is not there")),
            Some(shape) if *shape != here => Some(format!(
                "'{name}' is {} there and {} here",
                dims(shape),
                dims(&here)
            )),
            Some(_) => None,
        };
        if let Some(what) = differs {
            return Err(crate::Error::invalid_argument(format!(
                "{} holds checkpoints of another model ({what}): train this one in a directory of its own",
                prefix.parent().unwrap_or(&prefix).display()
            )));
        }
    }
    Ok(Some(prefix))
}

/// Trains a classifier on `data.train` as `opts` says and measures it on `data.test`.
pub fn train(data: &Split, opts: &Options) -> Result<Report> {
    let (train_set, test_set) = (&data.train, &data.test);
    if train_set.is_empty() || opts.batch == 0 || opts.steps <= 0 {
        return Err(crate::Error::invalid_argument(
            "training needs examples, a batch of at least 1 and at least one step",
        ));
    }
    let cnn = opts.model == Model::Cnn;
    let (graph, n) = net(
        opts.model,
        train_set.height,
        train_set.width,
        opts.lr,
        opts.seed,
    )?;
    let mut hooks: Vec<Box<dyn SessionRunHook>> = vec![
        StopAtStepHook::num_steps(opts.steps).boxed(),
        Box::new(NanTensorHook::new(n.loss, true)),
    ];
    match opts.progress {
        Progress::Bar => hooks.push(Box::new(ProgressBarHook::new(
            n.loss,
            opts.steps as u64,
            10,
        ))),
        Progress::Log => hooks.push(Box::new(LoggingTensorHook::new(
            vec![("loss".into(), n.loss)],
            Some(100),
            None,
            false,
            Arc::new(SystemClock),
        )?)),
        Progress::Quiet => {}
    }
    let mut builder = MonitoredTrainingSession::new(graph)
        .master(opts.master.clone())
        .config(opts.config.clone())
        .hooks(hooks)
        .save_checkpoint_steps(opts.save_checkpoint_steps)
        .save_summaries_steps(opts.save_summaries_steps)
        .log_step_count_steps(100);
    if let Some(dir) = &opts.checkpoint_dir {
        builder = builder.checkpoint_dir(dir);
    }
    let mut sess = builder.create()?;
    let gs = sess
        .graph()
        .get_global_step()
        .ok_or_else(|| crate::Error::internal("no global step"))?;
    let raw = sess
        .raw_session()
        .ok_or_else(|| crate::Error::internal("no session"))?;
    let adapter = raw.device_name().to_string();
    let start_step = raw.read_variables(&[gs])?[0].scalar_value()? as i64;
    // What the session restored: the newest checkpoint left once damaged ones were set
    // aside (their `.index` is gone), read after the session started.
    let restored_from = opts
        .checkpoint_dir
        .as_ref()
        .and_then(|d| checkpoints_newest_first(d).into_iter().next())
        .filter(|_| start_step > 0);
    let (rank, ranks) = match opts.master {
        Master::Local => (0, 1),
        _ => crate::hooks::distributed::current_world().map_or((0, 1), |w| (w.rank, w.size)),
    };
    if !opts.batch.is_multiple_of(ranks) || opts.batch < ranks {
        return Err(crate::Error::invalid_argument(format!(
            "a batch of {} does not split evenly across {ranks} ranks",
            opts.batch
        )));
    }
    let batch = opts.batch / ranks;
    let train_set = &train_set.shard(rank, ranks);

    // The batch of each global step is drawn (with replacement, from this rank's shard)
    // from a stream keyed on the seed, the rank and that step: the input position is the
    // global step the checkpoint holds, so a resumed run trains on exactly the batches
    // an uninterrupted one would have.
    let loss_every = (opts.steps / 20).max(1);
    let mut losses = Vec::new();
    let started = Instant::now();
    let mut runs = 0i64;
    while !sess.should_stop() {
        let step = start_step + runs;
        let mut rng = Stream::new((opts.seed ^ ((rank as u64) << 32), step as u64));
        let rows: Vec<usize> = (0..batch)
            .map(|_| ((rng.uniform() * train_set.len() as f64) as usize).min(train_set.len() - 1))
            .collect();
        let (bx, by) = train_set.batch(&rows, cnn)?;
        let feeds = [(n.x, bx), (n.y, by)];
        runs += 1;
        if (step + 1) % loss_every == 0 || runs == 1 {
            let out = sess.run(&feeds, &[n.loss], &[n.train])?;
            losses.push((step + 1, out[0].scalar_value()? as f32));
        } else {
            sess.run(&feeds, &[], &[n.train])?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let raw = sess
        .raw_session()
        .ok_or_else(|| crate::Error::internal("no session"))?;
    let final_step = raw.read_variables(&[gs])?[0].scalar_value()? as i64;
    let held_out_accuracy = evaluate(raw, test_set, &n, cnn)?;
    if let Some(dir) = opts.checkpoint_dir.as_ref().filter(|_| rank == 0) {
        sess.coordinator().event_writer(dir)?.add_summary(
            final_step,
            vec![events::scalar(
                "held_out_accuracy",
                held_out_accuracy as f32,
            )],
        )?;
    }
    sess.close()?;
    Ok(Report {
        adapter,
        restored_from,
        start_step,
        final_step,
        losses,
        held_out_accuracy,
        secs,
        checkpoint: opts.checkpoint_dir.as_ref().and_then(latest_checkpoint),
        rank,
        ranks,
    })
}

/// The fraction of `test` classified right, in batches of 1000.
fn evaluate(sess: &mut dyn crate::Executor, test: &Images, n: &Net, cnn: bool) -> Result<f64> {
    if test.is_empty() {
        return Ok(0.0);
    }
    let mut right = 0.0;
    let rows: Vec<usize> = (0..test.len()).collect();
    for chunk in rows.chunks(1000) {
        let (tx, ty) = test.batch(chunk, cnn)?;
        right += sess.run(&[(n.x, tx), (n.y, ty)], &[n.correct], &[])?[0].scalar_value()?;
    }
    Ok(right / test.len() as f64)
}
