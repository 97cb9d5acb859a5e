//! SIGTERM and SIGINT end training with a checkpoint: the first asks the monitored
//! session to stop after the current step (its `close()` then saves a final
//! checkpoint at that step and flushes the summaries); a second one exits at once
//! (status 128 + the signal, as a shell reports it). Preemptible machines and batch
//! schedulers send SIGTERM before they kill a job; a user's Ctrl-C sends SIGINT.
//!
//! The handlers are installed once per process by the first monitored session that
//! asks for them (`MonitoredTrainingSession::handle_signals`, on by default); a raw
//! `Session` installs none.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use wgtrain_engine::{Error, Result};

struct Flags {
    term: Arc<AtomicBool>,
    int: Arc<AtomicBool>,
}

static FLAGS: OnceLock<Flags> = OnceLock::new();

/// Installs the handlers (once per process; later calls do nothing).
pub fn install() -> Result<()> {
    if FLAGS.get().is_some() {
        return Ok(());
    }
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flags = Flags {
        term: Arc::new(AtomicBool::new(false)),
        int: Arc::new(AtomicBool::new(false)),
    };
    let any = Arc::new(AtomicBool::new(false));
    for (sig, flag) in [(SIGTERM, &flags.term), (SIGINT, &flags.int)] {
        let fail = |e: std::io::Error| Error::internal(format!("installing a signal handler: {e}"));
        // A second signal (of either kind) exits at once; the first only sets flags.
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&any))
            .map_err(fail)?;
        signal_hook::flag::register(sig, Arc::clone(flag)).map_err(fail)?;
        signal_hook::flag::register(sig, Arc::clone(&any)).map_err(fail)?;
    }
    let _ = FLAGS.set(flags);
    Ok(())
}

/// The signal received since the handlers were installed ("SIGTERM", "SIGINT"), if any.
pub fn received() -> Option<&'static str> {
    let f = FLAGS.get()?;
    if f.term.load(Ordering::SeqCst) {
        Some("SIGTERM")
    } else if f.int.load(Ordering::SeqCst) {
        Some("SIGINT")
    } else {
        None
    }
}
