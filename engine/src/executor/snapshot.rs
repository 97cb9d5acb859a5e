//! [`Snapshot`]: variable values on their way to the host.

use crate::error::{Error, Result};
use crate::tensor::HostTensor;
use crossbeam_channel::Receiver;

/// Bytes of variables on their way from the device, delivered by the readback thread.
///
/// Created by [`Session::snapshot_variables`](crate::Session::snapshot_variables) or [`Session::run_and_snapshot`](crate::Session::run_and_snapshot): the device
/// copy is recorded with the submission, the mapping and the copy to host memory happen
/// on another thread, so the training thread never waits for them.
pub struct Snapshot {
    rx: Receiver<Result<Vec<HostTensor>>>,
}

impl Snapshot {
    /// A snapshot whose values will arrive on `rx`.
    #[cfg_attr(not(feature = "gpu"), allow(dead_code))]
    pub(crate) fn pending(rx: Receiver<Result<Vec<HostTensor>>>) -> Snapshot {
        Snapshot { rx }
    }

    /// Another handle on the same delivery (whichever waits first gets the values).
    pub fn clone_handle(&self) -> Snapshot {
        Snapshot {
            rx: self.rx.clone(),
        }
    }

    /// A snapshot of values already on the host.
    pub fn ready(values: Vec<HostTensor>) -> Snapshot {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let _ = tx.send(Ok(values));
        Snapshot { rx }
    }

    /// Blocks until the bytes arrive.
    pub fn wait(self) -> Result<Vec<HostTensor>> {
        self.rx
            .recv()
            .map_err(|_| Error::aborted("the snapshot's readback thread stopped"))?
    }

    /// Blocks until the bytes arrive, for at most `timeout` (then DeadlineExceeded;
    /// the values may still arrive on another handle).
    pub fn wait_timeout(self, timeout: std::time::Duration) -> Result<Vec<HostTensor>> {
        self.rx.recv_timeout(timeout).map_err(|e| match e {
            crossbeam_channel::RecvTimeoutError::Timeout => Error::new(
                crate::Code::DeadlineExceeded,
                format!(
                    "the snapshot's values did not arrive within {:.1} s",
                    timeout.as_secs_f64()
                ),
            ),
            crossbeam_channel::RecvTimeoutError::Disconnected => {
                Error::aborted("the snapshot's readback thread stopped")
            }
        })?
    }

    /// The bytes if they have arrived.
    pub fn try_get(&self) -> Option<Result<Vec<HostTensor>>> {
        self.rx.try_recv().ok()
    }

    /// The channel the bytes arrive on (for `select!`).
    pub fn receiver(&self) -> &Receiver<Result<Vec<HostTensor>>> {
        &self.rx
    }
}
