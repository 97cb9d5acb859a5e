//! Trains a CNN on MNIST from the four IDX files (raw or `.gz`) in `--data DIR`, through
//! MonitoredTrainingSession, with checkpoints and summaries in `runs/mnist`.
//!
//! `cargo run --release --example mnist -- --data DIR`

#[path = "common/mod.rs"]
mod common;

use clap::Parser;
use common::BackendArg;
use std::path::PathBuf;
use wgtrain::classifier::{Model, Options};

/// Trains a CNN on MNIST (train-images-idx3-ubyte, train-labels-idx1-ubyte,
/// t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte in --data, each raw or .gz) with
/// wgtrain's MonitoredTrainingSession; the t10k files are the held-out set.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// The directory with the four MNIST files.
    #[arg(long)]
    data: PathBuf,
    /// Steps to train in this run.
    #[arg(long, default_value_t = 2000)]
    steps: i64,
    /// Examples per step.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// Where checkpoints and TensorBoard summaries go (and are restored from).
    #[arg(long, default_value = "runs/mnist")]
    checkpoint_dir: PathBuf,
    /// The graphics API wgpu uses.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendArg,
}

fn main() -> std::process::ExitCode {
    common::exit_with(run(Args::parse()))
}

fn run(args: Args) -> wgtrain::Result<()> {
    let data = wgtrain::datasets::mnist(&args.data)?;
    let mut opts = Options::new(Model::Cnn);
    opts.steps = args.steps;
    opts.batch = args.batch;
    opts.lr = args.lr;
    opts.checkpoint_dir = Some(args.checkpoint_dir.clone());
    opts.config = opts.config.backend(args.backend.into());
    common::train_and_report(&data, opts, "a CNN", "MNIST")?;
    Ok(())
}
