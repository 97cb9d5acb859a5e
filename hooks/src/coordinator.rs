//! The [`Coordinator`]: a stop flag shared by the training loop and background threads,
//! the first error that caused a stop, the threads and workers to join at close, and
//! the event writers of the session.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wgtrain_checkpoint::events::{EventWriter, EventWriters};
use wgtrain_engine::{Background, Code, Error, Result};

#[derive(Default)]
struct State {
    stop: bool,
    error: Option<Error>,
    threads: Vec<(String, JoinHandle<()>)>,
    workers: Vec<Arc<dyn Background>>,
}

/// What a stop takes: (threads, the session's workers, the event writers' workers).
type Threads = (
    Vec<(String, JoinHandle<()>)>,
    Vec<Arc<dyn Background>>,
    Vec<Arc<dyn Background>>,
);

/// Shared stop state (TF's `tf.train.Coordinator`); cheap to clone.
///
/// Besides TF's stop flag and threads, it keeps the [`Background`] workers of the
/// session it coordinates (the readback, the saver, the event writers: registered
/// with [`register_worker`](Self::register_worker)) and the event writers the hooks
/// open through [`event_writer`](Self::event_writer). [`join`](Self::join) stops and
/// waits for all of them within one grace period; a session re-created after an error
/// gets the [`successor`](Self::successor), which keeps the event writers.
#[derive(Clone, Default)]
pub struct Coordinator {
    state: Arc<Mutex<State>>,
    writers: EventWriters,
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

    /// Registers a worker to stop (its queue closed, what is queued still done) and
    /// wait for at [`join`](Self::join). Registering one twice is harmless.
    pub fn register_worker(&self, worker: Arc<dyn Background>) {
        if let Ok(mut s) = self.state.lock()
            && !s.workers.iter().any(|w| Arc::ptr_eq(w, &worker))
        {
            s.workers.push(worker);
        }
    }

    /// The event writer of `dir` for this session (one per directory, shared by
    /// every hook writing there, opened on first use and registered with this
    /// coordinator): closed by [`join`](Self::join), never left open by a session.
    pub fn event_writer(&self, dir: impl AsRef<std::path::Path>) -> Result<Arc<EventWriter>> {
        let w = self.writers.get(dir)?;
        self.register_worker(w.background());
        Ok(w)
    }

    /// Requests a stop and takes the registered threads, the session's workers and the
    /// event writers' workers (all the writers, registered or not).
    fn stop_and_take(&self) -> Threads {
        self.request_stop(None);
        let (threads, workers) = self
            .state
            .lock()
            .map(|mut s| {
                (
                    std::mem::take(&mut s.threads),
                    std::mem::take(&mut s.workers),
                )
            })
            .unwrap_or_default();
        let writers = self.writers.backgrounds();
        let workers = workers
            .into_iter()
            .filter(|w| !writers.iter().any(|k| Arc::ptr_eq(k, w)))
            .collect();
        (threads, workers, writers)
    }

    /// A fresh coordinator for the session re-created after this one's failed: this
    /// one's threads and workers are stopped and waited for (up to `grace`; those still
    /// running are named in a warning and left), its error is dropped, and the event
    /// writers stay open for the successor.
    pub fn successor(&self, grace: Duration) -> Coordinator {
        let (threads, session_scoped, writers) = self.stop_and_take();
        let stragglers = wait_for(threads, &session_scoped, Instant::now() + grace).1;
        if !stragglers.is_empty() {
            tracing::warn!(threads = ?stragglers, "the failed session's threads still run after the grace period");
        }
        let next = Coordinator {
            state: Arc::default(),
            writers: self.writers.clone(),
        };
        for w in writers {
            next.register_worker(w);
        }
        next
    }

    /// Stops, waits up to `grace` for the registered workers (the event writers
    /// flushed and closed last) and threads, and returns the recorded error, else
    /// DeadlineExceeded naming the workers still busy after `grace` (left running),
    /// else the first error a worker met; threads still running after `grace` are an
    /// Internal error naming them (they are left running) unless `ignore_live_threads`.
    pub fn join(&self, grace: Duration, ignore_live_threads: bool) -> Result<()> {
        let (threads, workers, writers) = self.stop_and_take();
        let deadline = Instant::now() + grace;
        // The writers close last: the saver's workers log to them as saves land.
        let (failed, late_workers) = wait_for(Vec::new(), &workers, deadline);
        let (failed_writer, late_writers) = wait_for(Vec::new(), &writers, deadline);
        let (_, stragglers) = wait_for(threads, &[], deadline);
        let failed = failed.or(failed_writer);
        let late: Vec<String> = late_workers.into_iter().chain(late_writers).collect();
        // Their errors and deadlines were seen by the wait above.
        let _ = self.writers.close_all(Some(deadline));
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
        // A worker past the deadline may hold a checkpoint or summaries not yet
        // written: the caller hears of it whatever `ignore_live_threads` says.
        if !late.is_empty() {
            return Err(Error::new(
                Code::DeadlineExceeded,
                format!(
                    "stop_grace_period ({:.1} s) ended with workers still busy: {}; what \
                     they held may not be written",
                    grace.as_secs_f64(),
                    late.join(", ")
                ),
            ));
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Closes the workers' queues and waits for the threads and workers until `deadline`:
/// the first error a worker met, and the names of those still running.
fn wait_for(
    threads: Vec<(String, JoinHandle<()>)>,
    workers: &[Arc<dyn Background>],
    deadline: Instant,
) -> (Option<Error>, Vec<String>) {
    for w in workers {
        w.close_queue();
    }
    let mut stragglers = Vec::new();
    let mut failed = None;
    for w in workers {
        match w.wait(Some(deadline)) {
            Ok(()) => {}
            Err(e) if e.code == Code::DeadlineExceeded => stragglers.push(w.name().to_string()),
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
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
    (failed, stragglers)
}
