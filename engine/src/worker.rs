//! One background worker: a named thread serving a bounded queue of jobs.
//!
//! The session's readback, the event writers and the checkpoint saver each run on a
//! [`Worker`]: jobs are queued with back-pressure ([`Worker::submit`] blocks while
//! `capacity` jobs wait), the first error a job returns is kept and returned by the next
//! `submit`, `flush` or `close`, [`Worker::flush`] waits for everything queued before
//! it, and [`Worker::close`] drains the queue and joins the thread within a deadline:
//! a worker still busy then (a device that never finishes) is DeadlineExceeded naming
//! it, never a hang. [`Worker::background`] is the handle a coordinator keeps to stop
//! and wait for it at close.

use crate::{Code, Error, Result};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a [`Worker`] does with its jobs.
pub trait Task: Send + 'static {
    /// One queued job.
    type Job: Send + 'static;

    /// Does one job. An error is kept (the first one) and returned to the owner.
    fn run(&mut self, job: Self::Job) -> Result<()>;

    /// Makes what earlier jobs did durable (flushes a file): on [`Worker::flush`],
    /// every `flush_every` without a job, and once the queue is drained at close.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

/// How a [`Worker`] queues and flushes.
#[derive(Clone, Copy, Debug)]
pub struct WorkerOptions {
    /// Jobs that may wait; `submit` blocks while this many do (0: until the thread
    /// takes the job).
    pub capacity: usize,
    /// Calls [`Task::flush`] after this long without a job, when set.
    pub flush_every: Option<Duration>,
    /// Runs the thread at the lowest priority (writers that must not slow training).
    pub low_priority: bool,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            capacity: 64,
            flush_every: None,
            low_priority: false,
        }
    }
}

enum Msg<J> {
    Job(J),
    Flush(Sender<()>),
}

struct Shared<J> {
    name: String,
    tx: Mutex<Option<Sender<Msg<J>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    error: Mutex<Option<Error>>,
    finished: Mutex<bool>,
    ended: Condvar,
}

impl<J> Shared<J> {
    fn keep(&self, e: Error) {
        if let Ok(mut g) = self.error.lock() {
            if g.is_none() {
                *g = Some(e);
            } else {
                tracing::warn!(worker = %self.name, error = %e, "a later error of a failed worker");
            }
        }
    }

    fn take_error(&self) -> Result<()> {
        match self.error.lock().ok().and_then(|mut g| g.take()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn peek_error(&self) -> Option<Error> {
        self.error.lock().ok().and_then(|g| g.clone())
    }

    /// Waits until the thread ended or `deadline`; joins it when it did.
    fn wait_ended(&self, deadline: Option<Instant>) -> bool {
        let Ok(mut done) = self.finished.lock() else {
            return false;
        };
        while !*done {
            match deadline {
                None => match self.ended.wait(done) {
                    Ok(g) => done = g,
                    Err(_) => return false,
                },
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    match self.ended.wait_timeout(done, left) {
                        Ok((g, _)) => done = g,
                        Err(_) => return false,
                    }
                }
            }
        }
        drop(done);
        if let Some(h) = self.thread.lock().ok().and_then(|mut t| t.take())
            && h.join().is_err()
        {
            self.keep(Error::internal(format!(
                "the {} worker panicked",
                self.name
            )));
        }
        true
    }

    fn deadline_error(&self, waited: Option<Duration>) -> Error {
        Error::new(
            Code::DeadlineExceeded,
            format!(
                "the {} worker was still busy after {:.1} s; it was left running",
                self.name,
                waited.unwrap_or_default().as_secs_f64()
            ),
        )
    }
}

/// Marks the worker finished when its thread ends, however it ends.
struct EndGuard<J>(Arc<Shared<J>>);

impl<J> Drop for EndGuard<J> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.keep(Error::internal(format!(
                "the {} worker panicked",
                self.0.name
            )));
        }
        if let Ok(mut done) = self.0.finished.lock() {
            *done = true;
        }
        self.0.ended.notify_all();
    }
}

/// What a coordinator keeps of a worker: stop it, wait for it.
pub trait Background: Send + Sync {
    /// The worker's name (its thread's).
    fn name(&self) -> &str;

    /// Closes the queue: what was queued still runs, then the thread ends.
    fn close_queue(&self);

    /// Waits for the thread to end until `deadline` (`None`: for as long as it takes):
    /// the first error the worker met (it stays for the owner too), or
    /// DeadlineExceeded when it is still running.
    fn wait(&self, deadline: Option<Instant>) -> Result<()>;
}

impl<J: Send + 'static> Background for Shared<J> {
    fn name(&self) -> &str {
        &self.name
    }

    fn close_queue(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
    }

    fn wait(&self, deadline: Option<Instant>) -> Result<()> {
        let start = Instant::now();
        if !self.wait_ended(deadline) {
            return Err(self.deadline_error(deadline.map(|d| d.saturating_duration_since(start))));
        }
        match self.peek_error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// A named background thread serving a bounded queue (see the module docs).
pub struct Worker<J: Send + 'static> {
    shared: Arc<Shared<J>>,
}

impl<J: Send + 'static> std::fmt::Debug for Worker<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("name", &self.shared.name)
            .field("open", &self.is_open())
            .finish()
    }
}

impl<J: Send + 'static> Worker<J> {
    /// Starts a thread named `wgtrain-<name>` running `task` on the jobs submitted.
    pub fn spawn<T: Task<Job = J>>(name: &str, opts: WorkerOptions, task: T) -> Result<Worker<J>> {
        let (tx, rx) = crossbeam_channel::bounded(opts.capacity);
        let shared = Arc::new(Shared {
            name: name.to_string(),
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(None),
            error: Mutex::new(None),
            finished: Mutex::new(false),
            ended: Condvar::new(),
        });
        let guard = EndGuard(Arc::clone(&shared));
        let handle = std::thread::Builder::new()
            .name(format!("wgtrain-{name}"))
            .spawn(move || {
                if opts.low_priority {
                    lower_priority();
                }
                serve(task, rx, opts.flush_every, &guard.0);
                drop(guard);
            })
            .map_err(|e| {
                Error::resource_exhausted(format!("starting the {name} worker thread: {e}"))
            })?;
        if let Ok(mut t) = shared.thread.lock() {
            *t = Some(handle);
        }
        Ok(Worker { shared })
    }

    /// The worker's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Whether jobs are still taken (not closed).
    pub fn is_open(&self) -> bool {
        self.shared.tx.lock().map(|t| t.is_some()).unwrap_or(false)
    }

    fn sender(&self) -> Result<Sender<Msg<J>>> {
        self.shared
            .tx
            .lock()
            .map_err(|_| Error::internal(format!("the {} worker's lock is poisoned", self.name())))?
            .clone()
            .ok_or_else(|| {
                Error::new(
                    Code::FailedPrecondition,
                    format!("the {} worker is closed", self.name()),
                )
            })
    }

    fn stopped(&self) -> Error {
        self.shared
            .peek_error()
            .unwrap_or_else(|| Error::aborted(format!("the {} worker stopped", self.name())))
    }

    /// Queues `job` (blocks while the queue is full); first returns the error an
    /// earlier job met, if one did.
    pub fn submit(&self, job: J) -> Result<()> {
        self.shared.take_error()?;
        self.sender()?
            .send(Msg::Job(job))
            .map_err(|_| self.stopped())
    }

    /// Queues `job` when there is room, else ResourceExhausted (never blocks).
    pub fn try_submit(&self, job: J) -> Result<()> {
        self.shared.take_error()?;
        self.sender()?.try_send(Msg::Job(job)).map_err(|e| match e {
            crossbeam_channel::TrySendError::Full(_) => {
                Error::resource_exhausted(format!("the {} worker's queue is full", self.name()))
            }
            crossbeam_channel::TrySendError::Disconnected(_) => self.stopped(),
        })
    }

    /// The first error a job met since the last call, if any.
    pub fn take_error(&self) -> Result<()> {
        self.shared.take_error()
    }

    /// Waits until every job queued before this call ran and the task flushed, for
    /// at most `timeout` (DeadlineExceeded after it); returns the first error since
    /// the last call.
    pub fn flush(&self, timeout: Option<Duration>) -> Result<()> {
        self.shared.take_error()?;
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.sender()?
            .send(Msg::Flush(tx))
            .map_err(|_| self.stopped())?;
        let got = match timeout {
            Some(t) => rx.recv_timeout(t).map_err(|e| match e {
                RecvTimeoutError::Timeout => self.shared.deadline_error(Some(t)),
                RecvTimeoutError::Disconnected => self.stopped(),
            }),
            None => rx.recv().map_err(|_| self.stopped()),
        };
        got?;
        self.shared.take_error()
    }

    /// Closes the queue, lets the queued jobs run, flushes and joins the thread, for
    /// at most `timeout` (then DeadlineExceeded, and the thread is left to finish on
    /// its own); returns the first error since the last call. Later submits are
    /// FailedPrecondition; a second close returns at once.
    pub fn close(&self, timeout: Option<Duration>) -> Result<()> {
        self.shared.close_queue();
        let deadline = timeout.map(|t| Instant::now() + t);
        if !self.shared.wait_ended(deadline) {
            return Err(self.shared.deadline_error(timeout));
        }
        self.shared.take_error()
    }

    /// The handle a coordinator keeps: it closes the queue and waits at its join.
    pub fn background(&self) -> Arc<dyn Background> {
        Arc::clone(&self.shared) as Arc<dyn Background>
    }
}

impl<J: Send + 'static> Drop for Worker<J> {
    /// Closes the queue and leaves the thread to drain it; nothing waits here (call
    /// `close` to wait and see errors).
    fn drop(&mut self) {
        self.shared.close_queue();
        if let Some(e) = self.shared.peek_error() {
            tracing::error!(worker = %self.shared.name, error = %e, "a worker's error was never collected");
        }
    }
}

fn serve<T: Task>(
    mut task: T,
    rx: Receiver<Msg<T::Job>>,
    flush_every: Option<Duration>,
    shared: &Shared<T::Job>,
) {
    let mut last_flush = Instant::now();
    loop {
        let msg = match flush_every {
            Some(every) => match rx.recv_timeout(every.saturating_sub(last_flush.elapsed())) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(e) = task.flush() {
                        shared.keep(e);
                    }
                    last_flush = Instant::now();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => None,
            },
            None => rx.recv().ok(),
        };
        match msg {
            Some(Msg::Job(job)) => {
                if let Err(e) = task.run(job) {
                    shared.keep(e);
                }
            }
            Some(Msg::Flush(done)) => {
                if let Err(e) = task.flush() {
                    shared.keep(e);
                }
                last_flush = Instant::now();
                let _ = done.send(());
            }
            None => break,
        }
    }
    if let Err(e) = task.flush() {
        shared.keep(e);
    }
}

fn lower_priority() {
    if let Err(e) =
        thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min)
    {
        tracing::debug!(error = ?e, "could not lower a worker thread's priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sum(Arc<Mutex<Vec<i64>>>);

    impl Task for Sum {
        type Job = i64;
        fn run(&mut self, job: i64) -> Result<()> {
            if job < 0 {
                return Err(Error::invalid_argument(format!("job {job}")));
            }
            self.0.lock().unwrap().push(job);
            Ok(())
        }
    }

    #[test]
    fn runs_in_order_flushes_and_reports_the_first_error() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let w = Worker::spawn("test", WorkerOptions::default(), Sum(Arc::clone(&seen))).unwrap();
        for i in 0..100 {
            w.submit(i).unwrap();
        }
        w.flush(None).unwrap();
        assert_eq!(*seen.lock().unwrap(), (0..100).collect::<Vec<_>>());
        w.submit(-1).unwrap();
        w.submit(-2).unwrap();
        w.flush(None).unwrap_err();
        assert_eq!(w.flush(None).map_err(|e| e.code), Ok(()));
        w.submit(-3).unwrap();
        let e = w.close(Some(Duration::from_secs(5))).unwrap_err();
        assert_eq!(e.code, Code::InvalidArgument);
        assert!(e.message.contains("-3"), "{e}");
        assert_eq!(w.submit(1).unwrap_err().code, Code::FailedPrecondition);
        w.close(None).unwrap();
    }

    struct Stuck;

    impl Task for Stuck {
        type Job = ();
        fn run(&mut self, (): ()) -> Result<()> {
            std::thread::sleep(Duration::from_secs(3600));
            Ok(())
        }
    }

    #[test]
    fn a_stuck_worker_is_deadline_exceeded_within_the_timeout() {
        let w = Worker::spawn("stuck", WorkerOptions::default(), Stuck).unwrap();
        w.submit(()).unwrap();
        let t = Instant::now();
        let e = w.flush(Some(Duration::from_millis(200))).unwrap_err();
        assert_eq!(e.code, Code::DeadlineExceeded);
        let e = w.close(Some(Duration::from_millis(200))).unwrap_err();
        assert_eq!(e.code, Code::DeadlineExceeded);
        assert!(e.message.contains("stuck"), "{e}");
        let bg = w.background();
        let e = bg
            .wait(Some(Instant::now() + Duration::from_millis(100)))
            .unwrap_err();
        assert_eq!(e.code, Code::DeadlineExceeded);
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    struct Panics;

    impl Task for Panics {
        type Job = ();
        fn run(&mut self, (): ()) -> Result<()> {
            panic!("a job panicked");
        }
    }

    #[test]
    fn a_panicking_task_is_internal_not_a_hang() {
        let w = Worker::spawn("panics", WorkerOptions::default(), Panics).unwrap();
        w.submit(()).unwrap();
        let e = w.close(Some(Duration::from_secs(5))).unwrap_err();
        assert_eq!(e.code, Code::Internal);
        assert!(e.message.contains("panicked"), "{e}");
    }

    struct Flushes(Arc<Mutex<usize>>);

    impl Task for Flushes {
        type Job = ();
        fn run(&mut self, (): ()) -> Result<()> {
            Ok(())
        }
        fn flush(&mut self) -> Result<()> {
            *self.0.lock().unwrap() += 1;
            Ok(())
        }
    }

    #[test]
    fn idle_workers_flush_periodically_and_at_close() {
        let n = Arc::new(Mutex::new(0));
        let opts = WorkerOptions {
            flush_every: Some(Duration::from_millis(20)),
            ..Default::default()
        };
        let w = Worker::spawn("flushes", opts, Flushes(Arc::clone(&n))).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(*n.lock().unwrap() >= 2);
        w.close(None).unwrap();
        let after = *n.lock().unwrap();
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(*n.lock().unwrap(), after);
    }

    struct Gated(Receiver<()>, Arc<Mutex<usize>>);

    impl Task for Gated {
        type Job = ();
        fn run(&mut self, (): ()) -> Result<()> {
            let _ = self.0.recv();
            *self.1.lock().unwrap() += 1;
            Ok(())
        }
    }

    #[test]
    fn a_full_queue_pushes_back() {
        let (open, gate) = crossbeam_channel::unbounded();
        let ran = Arc::new(Mutex::new(0));
        let opts = WorkerOptions {
            capacity: 2,
            ..Default::default()
        };
        let w = Worker::spawn("bounded", opts, Gated(gate, Arc::clone(&ran))).unwrap();
        w.submit(()).unwrap();
        // The thread takes the first job and waits at the gate; at most two more fit.
        let t = Instant::now();
        let mut queued = 1;
        loop {
            match w.try_submit(()) {
                Ok(()) => queued += 1,
                Err(e) => {
                    assert_eq!(e.code, Code::ResourceExhausted);
                    break;
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the queue never filled"
            );
        }
        assert!((2..=3).contains(&queued), "{queued} queued");
        for _ in 0..queued {
            open.send(()).unwrap();
        }
        w.close(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(*ran.lock().unwrap(), queued);
    }
}
