//! What the digits and MNIST examples share: flags for the device, how progress shows,
//! the report at the end.

use clap::ValueEnum;
use std::io::IsTerminal;
use std::path::Path;
use wgtrain::classifier::{self, Options, Progress, Report};
use wgtrain::datasets::Split;
use wgtrain::engine::Backend;

/// The graphics API wgpu uses.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BackendArg {
    Auto,
    Vulkan,
    Metal,
    Dx12,
    Gl,
}

impl From<BackendArg> for Backend {
    fn from(b: BackendArg) -> Backend {
        match b {
            BackendArg::Auto => Backend::Auto,
            BackendArg::Vulkan => Backend::Vulkan,
            BackendArg::Metal => Backend::Metal,
            BackendArg::Dx12 => Backend::Dx12,
            BackendArg::Gl => Backend::Gl,
        }
    }
}

/// A progress bar in a terminal; log lines (the loss, the step counter's steps/s)
/// otherwise.
fn progress() -> Progress {
    if std::io::stdout().is_terminal() {
        return Progress::Bar;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    Progress::Log
}

/// Trains `what` on `data` (of `dataset`) as `opts` says (progress as [`progress`] picks), saying
/// where it resumes from and, at the end, what it did and where its files are.
pub fn train_and_report(
    data: &Split,
    mut opts: Options,
    what: &str,
    dataset: &str,
) -> wgtrain::Result<()> {
    opts.progress = progress();
    let dir = opts.checkpoint_dir.clone().unwrap_or_default();
    if let Some(prefix) = wgtrain::checkpoint::latest_checkpoint(&dir) {
        println!("Resuming from {}", prefix.display());
    }
    println!(
        "Training {what} on {} images of {dataset} for {} steps (batch {}, Adam lr {})",
        data.train.len(),
        opts.steps,
        opts.batch,
        opts.lr
    );
    let r = classifier::train(data, &opts)?;
    print_report(&r, data.test.len(), &dir);
    Ok(())
}

/// Prints what the run did and where its files are.
fn print_report(r: &Report, test_len: usize, dir: &Path) {
    println!(
        "Device: {}. Steps {} to {} in {:.1} s ({:.0} steps/s).",
        r.adapter,
        r.start_step,
        r.final_step,
        r.secs,
        (r.final_step - r.start_step) as f64 / r.secs.max(1e-9)
    );
    if let Some((step, loss)) = r.losses.last() {
        println!("Loss at step {step}: {loss:.4}");
    }
    println!(
        "Held-out accuracy: {:.2}% on {test_len} images",
        100.0 * r.held_out_accuracy
    );
    if let Some(c) = &r.checkpoint {
        println!("Checkpoint: {}", c.display());
    }
    println!(
        "Event files: {0}\nView them: tensorboard --logdir {0}",
        dir.display()
    );
}

/// The exit code of a run: 0, or 1 after printing its error as one line on stderr.
pub fn exit_with(r: wgtrain::Result<()>) -> std::process::ExitCode {
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
