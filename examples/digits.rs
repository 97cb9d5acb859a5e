//! Trains a classifier on the UCI handwritten digits (embedded in the library) through
//! MonitoredTrainingSession: checkpoints and TensorBoard summaries in `runs/digits`
//! (`runs/digits-mlp` for `--model mlp`),
//! a progress bar in a terminal (log lines otherwise), the held-out accuracy at the
//! end. Running it again continues from the latest checkpoint.
//!
//! `cargo run --release --example digits -- --help`

#[path = "common/mod.rs"]
mod common;

use clap::{Parser, ValueEnum};
use common::BackendArg;
use std::path::PathBuf;
use wgtrain::classifier::{Model, Options};
use wgtrain::datasets::digits;

/// Fraction of the digits held out, and the seed of the split.
const HELD_OUT: f64 = 0.2;
const SPLIT_SEED: u64 = 7;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ModelArg {
    Mlp,
    Cnn,
}

/// Trains a classifier on the UCI handwritten digits (1797 8x8 images, 20% held out)
/// with wgtrain's MonitoredTrainingSession. Run again, it continues from the latest
/// checkpoint.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// The model.
    #[arg(long, value_enum, default_value = "cnn")]
    model: ModelArg,
    /// Steps to train in this run [default: 1500 for the MLP, 1000 for the CNN].
    #[arg(long)]
    steps: Option<i64>,
    /// Examples per step.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Adam's learning rate [default: 3e-3 for the MLP, 2e-3 for the CNN].
    #[arg(long)]
    lr: Option<f32>,
    /// Where checkpoints and TensorBoard summaries go (and are restored from)
    /// [default: runs/digits for the CNN, runs/digits-mlp for the MLP].
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// The graphics API wgpu uses.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendArg,
}

fn main() -> std::process::ExitCode {
    common::exit_with(run(Args::parse()))
}

fn run(args: Args) -> wgtrain::Result<()> {
    let model = match args.model {
        ModelArg::Mlp => Model::Mlp,
        ModelArg::Cnn => Model::Cnn,
    };
    let mut opts = Options::new(model);
    opts.steps = args.steps.unwrap_or(opts.steps);
    opts.lr = args.lr.unwrap_or(opts.lr);
    opts.batch = args.batch;
    let dir = args
        .checkpoint_dir
        .clone()
        .unwrap_or_else(|| wgtrain::classifier::default_run_dir(model));
    opts.checkpoint_dir = Some(dir);
    opts.config = opts.config.backend(args.backend.into());
    let data = digits()?.split(HELD_OUT, SPLIT_SEED);
    let what = if model == Model::Cnn {
        "a CNN"
    } else {
        "an MLP"
    };
    common::train_and_report(&data, opts, what, "the digits")?;
    Ok(())
}
