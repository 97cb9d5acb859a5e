//! FeedFnHook.

use super::*;

/// Feeds what `feed_fn` returns into every run (TF's `FeedFnHook`).
pub struct FeedFnHook {
    feed_fn: Box<dyn FnMut() -> Vec<(Tensor, HostTensor)> + Send>,
}

impl FeedFnHook {
    /// Calls `feed_fn` before every run.
    pub fn new(feed_fn: Box<dyn FnMut() -> Vec<(Tensor, HostTensor)> + Send>) -> Self {
        FeedFnHook { feed_fn }
    }
}

impl SessionRunHook for FeedFnHook {
    fn before_run(&mut self, _: &mut SessionRunContext) -> Result<Option<SessionRunArgs>> {
        Ok(Some(SessionRunArgs {
            feeds: (self.feed_fn)(),
            ..Default::default()
        }))
    }
}
