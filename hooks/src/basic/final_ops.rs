//! FinalOpsHook.

use super::*;

/// Runs ops at the end and keeps their values (TF's `FinalOpsHook`).
pub struct FinalOpsHook {
    final_ops: Vec<Tensor>,
    feeds: Vec<(Tensor, HostTensor)>,
    /// The values at the end.
    pub values: Arc<Mutex<Option<Vec<HostTensor>>>>,
}

impl FinalOpsHook {
    /// Fetches `final_ops` (with `feeds`) at `end`.
    pub fn new(final_ops: Vec<Tensor>, feeds: Vec<(Tensor, HostTensor)>) -> Self {
        FinalOpsHook {
            final_ops,
            feeds,
            values: Arc::new(Mutex::new(None)),
        }
    }
}

impl SessionRunHook for FinalOpsHook {
    fn end(&mut self, sess: &mut dyn Executor) -> Result<()> {
        let v = sess.run(&self.feeds, &self.final_ops, &[])?;
        if let Ok(mut g) = self.values.lock() {
            *g = Some(v);
        }
        Ok(())
    }
}
