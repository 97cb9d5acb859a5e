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
    // Under mpiexec or srun each process is one rank: the chief (rank 0) reports.
    let (_mpi, rank, ranks) = ranks(&mut opts)?;
    opts.progress = if rank == 0 {
        progress()
    } else {
        Progress::Quiet
    };
    let dir = opts.checkpoint_dir.clone().unwrap_or_default();
    let chief = rank == 0;
    let announced = wgtrain::classifier::resumable(data, &opts).map_err(|e| {
        if e.code == wgtrain::Code::InvalidArgument {
            wgtrain::Error::new(e.code, format!("{}; pass --checkpoint-dir DIR", e.message))
        } else {
            e
        }
    })?;
    if chief && let Some(prefix) = &announced {
        println!("Resuming from {}", prefix.display());
    }
    let split = if ranks > 1 {
        format!(" = {ranks} ranks x {}", opts.batch / ranks.max(1))
    } else {
        String::new()
    };
    if chief {
        println!(
            "Training {what} on {} images of {dataset} for {} steps (batch {}{split}, Adam lr {})",
            data.train.len(),
            opts.steps,
            opts.batch,
            opts.lr
        );
    }
    let r = classifier::train(data, &opts)?;
    if chief
        && let Some(used) = r
            .restored_from
            .as_ref()
            .filter(|u| Some(*u) != announced.as_ref())
    {
        println!(
            "Restored {} instead: the newer checkpoint cannot be restored (its files were moved aside as *.damaged)",
            used.display()
        );
    }
    if chief {
        print_report(&r, data.test.len(), &dir);
        if let (Some(sig), Some(c)) = (wgtrain::hooks::signals::received(), &r.checkpoint) {
            println!(
                "Stopped by {sig} at step {}: run the same command again to resume from {}",
                r.final_step,
                c.display()
            );
        }
    }
    Ok(())
}

/// The MPI runtime (kept alive for the run), this process's rank and the number of
/// ranks when an MPI launcher started it; sets `opts.master` to match.
#[cfg(feature = "mpi")]
fn ranks(
    opts: &mut Options,
) -> wgtrain::Result<(
    Option<std::sync::Arc<wgtrain::hooks::mpi::MpiRuntime>>,
    usize,
    usize,
)> {
    if !wgtrain::hooks::distributed::launched_by_mpi() {
        return Ok((None, 0, 1));
    }
    opts.master = wgtrain::hooks::Master::Mpi;
    let rt = wgtrain::hooks::mpi::init()?;
    let w = rt.world();
    Ok((Some(rt), w.rank, w.size))
}

/// Without the `mpi` feature, a launch under MPI says how to build for it.
#[cfg(not(feature = "mpi"))]
fn ranks(opts: &mut Options) -> wgtrain::Result<((), usize, usize)> {
    if wgtrain::hooks::distributed::launched_by_mpi() {
        opts.master = wgtrain::hooks::Master::Mpi;
    }
    Ok(((), 0, 1))
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
