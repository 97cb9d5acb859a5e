//! LoggingTensorHook.

use super::*;

/// Formats logged tensors.
pub type Formatter = Box<dyn Fn(&[(String, HostTensor)]) -> String + Send>;

/// Logs tensors every N runs or seconds and/or at the end (TF's `LoggingTensorHook`).
pub struct LoggingTensorHook {
    tensors: Vec<(String, Tensor)>,
    timer: Option<SecondOrStepTimer>,
    at_end: bool,
    formatter: Option<Formatter>,
    iter: i64,
    triggered: bool,
    /// The lines logged, in order (the most recent [`HISTORY`] at least).
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl LoggingTensorHook {
    /// Logs `tensors` (name, tensor) every `every_n_iter` runs or `every_n_secs`
    /// seconds (at most one) and/or `at_end`; InvalidArgument when none is given.
    pub fn new(
        tensors: Vec<(String, Tensor)>,
        every_n_iter: Option<i64>,
        every_n_secs: Option<f64>,
        at_end: bool,
        clock: SharedClock,
    ) -> Result<Self> {
        if every_n_iter.is_none() && every_n_secs.is_none() && !at_end {
            return Err(Error::invalid_argument(
                "Either every_n_iter, every_n_secs or at_end should be provided.",
            ));
        }
        if every_n_iter.is_some_and(|n| n <= 0) {
            return Err(Error::invalid_argument(
                "invalid every_n_iter: it must be positive",
            ));
        }
        let timer = if every_n_iter.is_some() || every_n_secs.is_some() {
            Some(SecondOrStepTimer::new(every_n_secs, every_n_iter, clock)?)
        } else {
            None
        };
        Ok(LoggingTensorHook {
            tensors,
            timer,
            at_end,
            formatter: None,
            iter: 0,
            triggered: false,
            lines: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Formats with `f` instead of `name = value, ...`.
    pub fn formatter(mut self, f: Formatter) -> Self {
        self.formatter = Some(f);
        self
    }

    /// Logs `values`, with the seconds since the last log as TF does (not on the first).
    fn log(&self, values: Vec<HostTensor>, elapsed: Option<f64>) {
        let named: Vec<(String, HostTensor)> = self
            .tensors
            .iter()
            .map(|(n, _)| n.clone())
            .zip(values)
            .collect();
        let line = match &self.formatter {
            Some(f) => f(&named),
            None => {
                let text = named
                    .iter()
                    .map(|(n, v)| format!("{n} = {}", summarize(v)))
                    .collect::<Vec<_>>()
                    .join(", ");
                match elapsed {
                    Some(secs) => format!("{text} ({secs:.3} sec)"),
                    None => text,
                }
            }
        };
        tracing::info!("{line}");
        if let Ok(mut l) = self.lines.lock() {
            push_recent(&mut l, line);
        }
    }
}

/// A short text of a tensor's values.
pub fn summarize(t: &HostTensor) -> String {
    let v = t.to_f64();
    if t.shape().is_empty() {
        return format!("{}", v.first().copied().unwrap_or(0.0));
    }
    let shown: Vec<String> = v.iter().take(6).map(|x| format!("{x}")).collect();
    let more = if v.len() > 6 { " ..." } else { "" };
    format!("[{}{more}]", shown.join(" "))
}

impl SessionRunHook for LoggingTensorHook {
    fn begin(&mut self, _: &mut Graph) -> Result<()> {
        self.iter = 0;
        if let Some(t) = &mut self.timer {
            t.reset();
        }
        Ok(())
    }

    fn before_run(&mut self, _: &mut SessionRunContext) -> Result<Option<SessionRunArgs>> {
        self.triggered = self
            .timer
            .as_ref()
            .is_some_and(|t| t.should_trigger_for_step(self.iter));
        if self.triggered {
            let fetches: Vec<Tensor> = self.tensors.iter().map(|(_, t)| *t).collect();
            return Ok(Some(SessionRunArgs::fetches(&fetches)));
        }
        Ok(None)
    }

    fn after_run(&mut self, _: &mut SessionRunContext, v: &SessionRunValues) -> Result<()> {
        if self.triggered {
            let elapsed = self
                .timer
                .as_mut()
                .and_then(|t| t.update_last_triggered_step(self.iter).0);
            self.log(v.results.clone(), elapsed);
        }
        self.iter += 1;
        Ok(())
    }

    fn end(&mut self, sess: &mut dyn Executor) -> Result<()> {
        if self.at_end {
            let fetches: Vec<Tensor> = self.tensors.iter().map(|(_, t)| *t).collect();
            let values = sess.run(&[], &fetches, &[])?;
            self.log(values, None);
        }
        Ok(())
    }
}
