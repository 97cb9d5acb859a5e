//! The session's readback worker: staging buffers handed over with their submission,
//! mapped once the device is done, their bytes delivered as host tensors on a
//! [`Snapshot`], so the training thread never waits for a map.

use super::plan::ReadLayout;
use crate::error::{Error, Result};
use crate::tensor::{DType, HostTensor};
use crate::worker::{Task, Worker};
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;

/// Bytes of variables on their way from the device, delivered by the readback thread.
///
/// Created by [`Session::snapshot_variables`](super::Session::snapshot_variables) or [`Session::run_and_snapshot`](super::Session::run_and_snapshot): the device
/// copy is recorded with the submission, the mapping and the copy to host memory happen
/// on another thread, so the training thread never waits for them.
pub struct Snapshot {
    rx: Receiver<Result<Vec<HostTensor>>>,
}

impl Snapshot {
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

pub(super) struct ReadbackJob {
    staging: wgpu::Buffer,
    index: wgpu::SubmissionIndex,
    layout: Arc<ReadLayout>,
    reply: Sender<Result<Vec<HostTensor>>>,
    /// Where the staging buffer goes back once read (a plan's pool), if anywhere.
    recycle: Option<Arc<std::sync::Mutex<Vec<wgpu::Buffer>>>>,
}

/// Hands `staging` (filled by submission `index`) to the readback thread, which
/// maps it once the device is done and delivers its tensors on the returned
/// snapshot; the buffer then goes back to `recycle`, if given.
pub(super) fn read_back_later(
    jobs: &Worker<ReadbackJob>,
    staging: wgpu::Buffer,
    index: &wgpu::SubmissionIndex,
    layout: &Arc<ReadLayout>,
    recycle: Option<Arc<std::sync::Mutex<Vec<wgpu::Buffer>>>>,
) -> Result<Snapshot> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    jobs.submit(ReadbackJob {
        staging,
        index: index.clone(),
        layout: Arc::clone(layout),
        reply: tx,
        recycle,
    })?;
    Ok(Snapshot { rx })
}

/// Maps the staging buffers of readback jobs once the device is done with them and
/// delivers their tensors (the session's background worker).
pub(super) struct Readback {
    pub(super) device: wgpu::Device,
    pub(super) timeout: Option<std::time::Duration>,
}

impl Task for Readback {
    type Job = ReadbackJob;

    fn run(&mut self, job: ReadbackJob) -> Result<()> {
        let r = map_and_read(
            &self.device,
            &job.staging,
            job.index,
            &job.layout,
            self.timeout,
        );
        if let (Ok(_), Some(pool)) = (&r, &job.recycle)
            && let Ok(mut p) = pool.lock()
            && p.len() < 4
        {
            p.push(job.staging.clone());
        }
        // The error goes to whoever waits on the snapshot.
        let _ = job.reply.send(r);
        Ok(())
    }
}

pub(super) fn map_and_read(
    device: &wgpu::Device,
    staging: &wgpu::Buffer,
    index: wgpu::SubmissionIndex,
    layout: &[(u64, DType, Vec<usize>)],
    timeout: Option<std::time::Duration>,
) -> Result<Vec<HostTensor>> {
    map_bytes(device, staging, index, timeout, |data| {
        layout
            .iter()
            .map(|(off, dtype, shape)| {
                let len = (shape.iter().product::<usize>() * dtype.device_size()) as u64;
                let bytes = &data[*off as usize..(*off + len) as usize];
                HostTensor::from_device_bytes(*dtype, shape, bytes)
            })
            .collect()
    })
}

/// Waits for submission `index`, maps `staging` and returns what `read` makes of its
/// bytes.
pub(super) fn map_bytes<T>(
    device: &wgpu::Device,
    staging: &wgpu::Buffer,
    index: wgpu::SubmissionIndex,
    timeout: Option<std::time::Duration>,
    read: impl FnOnce(&[u8]) -> T,
) -> Result<T> {
    let slice = staging.slice(..);
    let (tx, rx) = crossbeam_channel::bounded(1);
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    device
        .poll(wgpu::PollType::Wait {
            submission_index: Some(index),
            timeout,
        })
        .map_err(|e| match e {
            wgpu::PollError::Timeout => Error::new(
                crate::Code::DeadlineExceeded,
                format!(
                    "the device did not finish a submission within {:.1} s \
                     (SessionConfig::operation_timeout_in_ms)",
                    timeout.unwrap_or_default().as_secs_f64()
                ),
            ),
            e => Error::aborted(format!("waiting for the device: {e}")),
        })?;
    rx.recv()
        .map_err(|_| Error::aborted("buffer mapping was dropped"))?
        .map_err(|e| Error::aborted(format!("mapping a readback buffer: {e}")))?;
    let out = {
        let data = slice
            .get_mapped_range()
            .map_err(|e| Error::internal(format!("reading a mapped buffer: {e}")))?;
        read(&data)
    };
    staging.unmap();
    Ok(out)
}
