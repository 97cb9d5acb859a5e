//! Variable I/O of a [`Session`]: reads (blocking and as snapshots), writes, the
//! initialization state and the int64 scalars the host knows exactly.

use super::Session;
use crate::error::Result;
use crate::executor::Snapshot;
use crate::graph::Tensor;
use crate::tensor::{DType, HostTensor};

impl Session {
    /// Copies variables to the host (blocking).
    pub fn read_variables(&mut self, vars: &[Tensor]) -> Result<Vec<HostTensor>> {
        let values = self.snapshot_variables(vars)?.wait()?;
        for (v, t) in vars.iter().zip(&values) {
            self.note_scalar(v.0, t);
        }
        Ok(values)
    }

    /// The value of int64 scalar variable `var` (the global step) after the last run,
    /// when the host knows it exactly (it was read or written, and runs since changed
    /// it only by constant increments); `None` otherwise. Costs nothing: hooks use it
    /// instead of fetching the step every run.
    pub fn known_scalar(&self, var: Tensor) -> Option<i64> {
        self.scalars.get(&var.0).copied()
    }

    pub(super) fn note_scalar(&mut self, id: usize, t: &HostTensor) {
        if t.dtype() == DType::I64
            && t.shape().is_empty()
            && self.graph.is_variable(self.graph.handle(id))
            && let Ok(v) = t.as_i64()
        {
            self.scalars.insert(id, v[0]);
        }
    }

    /// Records a device copy of `vars` now and delivers their bytes later on a channel,
    /// without blocking (for checkpoint and summary writers).
    pub fn snapshot_variables(&mut self, vars: &[Tensor]) -> Result<Snapshot> {
        Ok(self.run_and_snapshot(&[], &[], &[], vars)?.1)
    }

    /// Writes host values into variables (all are validated before any is written) and
    /// marks them initialized.
    pub fn write_variables(&mut self, values: &[(Tensor, HostTensor)]) -> Result<()> {
        crate::executor::check_writes(&self.graph, values)?;
        for (v, t) in values {
            let loc = self.var_loc(v.0)?;
            if !t.is_empty() {
                self.gpu
                    .queue
                    .write_buffer(&loc.buf, loc.offset, &t.device_bytes());
            }
            if let Some(s) = self.vars.get_mut(&v.0) {
                s.initialized = true;
            }
            self.scalars.remove(&v.0);
            self.note_scalar(v.0, t);
        }
        self.gpu.queue.submit(std::iter::empty());
        Ok(())
    }

    /// Whether variable `var` holds a value.
    pub fn is_initialized(&self, var: Tensor) -> bool {
        self.vars.get(&var.0).is_some_and(|s| s.initialized)
    }

    /// The global and local variables that hold no value yet (TF's
    /// `report_uninitialized_variables`).
    pub fn uninitialized_variables(&self) -> Vec<Tensor> {
        let mut all = self.graph.global_variables();
        all.extend(self.graph.local_variables());
        all.into_iter()
            .filter(|v| !self.is_initialized(*v))
            .collect()
    }
}

impl crate::Executor for Session {
    fn graph(&self) -> &crate::Graph {
        Session::graph(self)
    }

    fn graph_arc(&self) -> std::sync::Arc<crate::Graph> {
        Session::graph_arc(self)
    }

    fn device_name(&self) -> &str {
        &self.adapter().name
    }

    fn run(
        &mut self,
        feeds: &[(Tensor, HostTensor)],
        fetches: &[Tensor],
        targets: &[crate::Operation],
    ) -> Result<Vec<HostTensor>> {
        Session::run(self, feeds, fetches, targets)
    }

    fn run_async(
        &mut self,
        feeds: &[(Tensor, HostTensor)],
        fetches: &[Tensor],
        targets: &[crate::Operation],
    ) -> Result<Snapshot> {
        Session::run_async(self, feeds, fetches, targets)
    }

    fn run_traced(
        &mut self,
        feeds: &[(Tensor, HostTensor)],
        fetches: &[Tensor],
        targets: &[crate::Operation],
    ) -> Result<(Vec<HostTensor>, super::RunMetadata)> {
        Session::run_traced(self, feeds, fetches, targets)
    }

    fn run_and_snapshot(
        &mut self,
        feeds: &[(Tensor, HostTensor)],
        fetches: &[Tensor],
        targets: &[crate::Operation],
        snapshot: &[Tensor],
    ) -> Result<(Vec<HostTensor>, Snapshot)> {
        Session::run_and_snapshot(self, feeds, fetches, targets, snapshot)
    }

    fn read_variables(&mut self, vars: &[Tensor]) -> Result<Vec<HostTensor>> {
        Session::read_variables(self, vars)
    }

    fn snapshot_variables(&mut self, vars: &[Tensor]) -> Result<Snapshot> {
        Session::snapshot_variables(self, vars)
    }

    fn write_variables(&mut self, values: &[(Tensor, HostTensor)]) -> Result<()> {
        Session::write_variables(self, values)
    }

    fn known_scalar(&self, var: Tensor) -> Option<i64> {
        Session::known_scalar(self, var)
    }

    fn is_initialized(&self, var: Tensor) -> bool {
        Session::is_initialized(self, var)
    }

    fn as_session(&mut self) -> Option<&mut Session> {
        Some(self)
    }

    fn background(&self) -> Option<std::sync::Arc<dyn crate::Background>> {
        Some(Session::background(self))
    }

    fn set_gradient_reducer(
        &mut self,
        reducer: Option<std::sync::Arc<dyn super::GradientReducer>>,
    ) -> Result<()> {
        Session::set_gradient_reducer(self, reducer);
        Ok(())
    }

    fn has_gradient_reducer(&self) -> bool {
        Session::has_gradient_reducer(self)
    }
}
