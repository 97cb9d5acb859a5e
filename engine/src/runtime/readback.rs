//! The session's readback worker: staging buffers handed over with their submission,
//! mapped once the device is done, their bytes delivered as host tensors on a
//! [`Snapshot`], so the training thread never waits for a map.

use super::plan::ReadLayout;
use crate::error::{Error, Result};
use crate::executor::Snapshot;
use crate::tensor::{DType, HostTensor};
use crate::worker::{Task, Worker};
use crossbeam_channel::Sender;
use std::sync::Arc;

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
    Ok(Snapshot::pending(rx))
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
