//! A progress bar over training steps (indicatif): steps done, steps per second and the
//! latest loss, for programs run in a terminal.

use crate::coordinator::Coordinator;
use crate::hook::{SessionRunArgs, SessionRunContext, SessionRunHook, SessionRunValues};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use wgtrain_engine::{Code, Error, Executor, Graph, Result, Snapshot, Tensor};

/// Shows a progress bar of `num_steps` global steps from the step the session starts
/// at, with steps per second and the loss. The loss is fetched every `loss_every` runs
/// without holding up the step (it arrives a few steps later); the bar draws to stderr
/// and hides itself when stderr is not a terminal.
pub struct ProgressBarHook {
    bar: ProgressBar,
    loss: Tensor,
    num_steps: u64,
    loss_every: u64,
    gs: Option<Tensor>,
    start: i64,
    runs: u64,
    in_flight: Option<Snapshot>,
}

impl ProgressBarHook {
    /// A bar over `num_steps` steps showing `loss` (fetched every `loss_every` runs).
    pub fn new(loss: Tensor, num_steps: u64, loss_every: u64) -> ProgressBarHook {
        ProgressBarHook::with_target(loss, num_steps, loss_every, ProgressDrawTarget::stderr())
    }

    /// A bar drawing to `target` (hidden in tests).
    pub fn with_target(
        loss: Tensor,
        num_steps: u64,
        loss_every: u64,
        target: ProgressDrawTarget,
    ) -> ProgressBarHook {
        let bar = ProgressBar::with_draw_target(Some(num_steps), target);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30.cyan/blue} {pos:>6}/{len} steps  {rate:>12}  {msg}  [{elapsed_precise}<{eta}]",
            )
            .map(|st| {
                st.with_key("rate", |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0} steps/s", s.per_sec());
                })
            })
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        ProgressBarHook {
            bar,
            loss,
            num_steps,
            loss_every: loss_every.max(1),
            gs: None,
            start: 0,
            runs: 0,
            in_flight: None,
        }
    }

    /// The bar (its position is the steps done this session).
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }

    /// Shows the loss that arrived, if any.
    fn show_loss(&mut self) -> Result<()> {
        let Some(values) = self.in_flight.as_ref().and_then(Snapshot::try_get) else {
            return Ok(());
        };
        self.in_flight = None;
        let values = values?;
        if let Some(v) = values.first() {
            self.bar
                .set_message(format!("loss {:.4}", v.scalar_value()?));
        }
        Ok(())
    }
}

impl SessionRunHook for ProgressBarHook {
    fn begin(&mut self, g: &mut Graph) -> Result<()> {
        self.gs = Some(g.get_global_step().ok_or_else(|| {
            Error::new(
                Code::FailedPrecondition,
                "Global step should be created to use ProgressBarHook.",
            )
        })?);
        Ok(())
    }

    fn after_create_session(&mut self, sess: &mut dyn Executor, _: &Coordinator) -> Result<()> {
        if let Some(gs) = self.gs {
            self.start = sess.read_variables(&[gs])?[0].scalar_value()? as i64;
        }
        self.bar.set_length(self.num_steps);
        self.bar.set_position(0);
        self.bar.reset_eta();
        Ok(())
    }

    fn before_run(&mut self, _: &mut SessionRunContext) -> Result<Option<SessionRunArgs>> {
        self.runs += 1;
        if self.in_flight.is_none() && (self.runs - 1).is_multiple_of(self.loss_every) {
            return Ok(Some(SessionRunArgs {
                pending: vec![self.loss],
                ..Default::default()
            }));
        }
        Ok(None)
    }

    fn after_run(&mut self, ctx: &mut SessionRunContext, v: &SessionRunValues) -> Result<()> {
        if let Some(p) = &v.pending {
            self.in_flight = Some(p.clone_handle());
        }
        self.show_loss()?;
        if let Some(step) = self.gs.and_then(|gs| ctx.session.known_scalar(gs)) {
            self.bar
                .set_position((step - self.start).clamp(0, self.num_steps as i64) as u64);
        } else {
            self.bar.inc(1);
        }
        Ok(())
    }

    fn end(&mut self, _: &mut dyn Executor) -> Result<()> {
        if let Some(p) = self.in_flight.take() {
            let values = p.wait()?;
            if let Some(v) = values.first() {
                self.bar
                    .set_message(format!("loss {:.4}", v.scalar_value()?));
            }
        }
        self.bar.finish();
        Ok(())
    }
}
