//! The [`Coordinator`]: a stop flag shared by the training loop and background threads,
//! the first error that caused a stop, and the threads to join at close.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wgtrain_engine::{Code, Error, Result};

#[derive(Default)]
struct State {
    stop: bool,
    error: Option<Error>,
    threads: Vec<(String, JoinHandle<()>)>,
}

/// Shared stop state (TF's `tf.train.Coordinator`); cheap to clone.
#[derive(Clone, Default)]
pub struct Coordinator {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("should_stop", &self.should_stop())
            .finish()
    }
}

impl Coordinator {
    /// A coordinator not asked to stop.
    pub fn new() -> Coordinator {
        Coordinator::default()
    }

    /// Asks everything to stop; the first error given is kept (later ones are dropped).
    pub fn request_stop(&self, error: Option<Error>) {
        if let Ok(mut s) = self.state.lock() {
            s.stop = true;
            if s.error.is_none() {
                s.error = error;
            }
        }
    }

    /// Whether a stop was requested.
    pub fn should_stop(&self) -> bool {
        self.state.lock().map(|s| s.stop).unwrap_or(true)
    }

    /// The error that caused the stop, if one did (kept).
    pub fn error(&self) -> Option<Error> {
        self.state.lock().ok().and_then(|s| s.error.clone())
    }

    /// Returns the recorded error, if any (TF's `raise_requested_exception`).
    pub fn raise_requested_exception(&self) -> Result<()> {
        match self.error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Registers a background thread to join at close.
    pub fn register_thread(&self, name: &str, handle: JoinHandle<()>) {
        if let Ok(mut s) = self.state.lock() {
            s.threads.push((name.to_string(), handle));
        }
    }

    /// Stops, waits up to `grace` for the registered threads, and returns the recorded
    /// error; threads still running after `grace` are an Internal error naming them
    /// (they are left running) unless `ignore_live_threads`.
    pub fn join(&self, grace: Duration, ignore_live_threads: bool) -> Result<()> {
        self.request_stop(None);
        let threads = self
            .state
            .lock()
            .map(|mut s| std::mem::take(&mut s.threads))
            .unwrap_or_default();
        let deadline = Instant::now() + grace;
        let mut stragglers = Vec::new();
        for (name, h) in threads {
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if h.is_finished() {
                let _ = h.join();
            } else {
                stragglers.push(name);
            }
        }
        self.raise_requested_exception()?;
        if !stragglers.is_empty() && !ignore_live_threads {
            return Err(Error::new(
                Code::Internal,
                format!(
                    "Coordinator stopped with threads still running: {}",
                    stragglers.join(", ")
                ),
            ));
        }
        if !stragglers.is_empty() {
            tracing::warn!(threads = ?stragglers, "threads still running after the grace period");
        }
        Ok(())
    }
}
