//! Recording a plan's steps into command encoders, and the timestamp queries of a
//! traced run ([`Session::run_traced`](super::Session::run_traced)).

use super::device::Gpu;
use super::kernels::Step;
use super::readback::map_and_read;
use crate::error::Result;
use crate::executor::{KernelTime, RunMetadata};
use crate::tensor::DType;

/// Timestamp queries of a traced run.
struct Queries {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    staging: wgpu::Buffer,
    labels: Vec<(String, &'static str)>,
}

/// What a traced run records of its kernels: their device times where the adapter has
/// timestamp queries, else the kernels alone.
pub(super) struct Tracer {
    queries: Option<Queries>,
    untimed: Vec<KernelTime>,
}

impl Tracer {
    /// A tracer for a run of at most `dispatches` kernels.
    pub(super) fn new(gpu: &Gpu, dispatches: usize) -> Tracer {
        let queries = gpu.timestamps.then(|| {
            let n = dispatches.max(1) as u32 * 2;
            let bytes = u64::from(n) * 8;
            Queries {
                set: gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("kernel times"),
                    ty: wgpu::QueryType::Timestamp,
                    count: n,
                }),
                resolve: gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("kernel times"),
                    size: bytes,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                }),
                staging: gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("kernel times staging"),
                    size: bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
                labels: Vec::new(),
            }
        });
        Tracer {
            queries,
            untimed: Vec::new(),
        }
    }

    /// The timestamp writes of the pass of one kernel, noting the kernel.
    fn pass_writes(
        &mut self,
        node: &str,
        entry: &'static str,
    ) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
        let Some(q) = self.queries.as_mut() else {
            self.untimed.push(KernelTime {
                node: node.to_string(),
                kernel: entry,
                start_ns: 0.0,
                duration_ns: 0.0,
            });
            return None;
        };
        let k = q.labels.len() as u32;
        q.labels.push((node.to_string(), entry));
        Some(wgpu::ComputePassTimestampWrites {
            query_set: &q.set,
            beginning_of_pass_write_index: Some(2 * k),
            end_of_pass_write_index: Some(2 * k + 1),
        })
    }

    /// Records the copy of the timestamps to the host-readable buffer.
    pub(super) fn resolve(&self, enc: &mut wgpu::CommandEncoder) {
        if let Some(q) = &self.queries
            && !q.labels.is_empty()
        {
            let n = q.labels.len() as u32 * 2;
            enc.resolve_query_set(&q.set, 0..n, &q.resolve, 0);
            enc.copy_buffer_to_buffer(&q.resolve, 0, &q.staging, 0, u64::from(n) * 8);
        }
    }

    /// The run's kernels, timed from the timestamps submission `index` wrote.
    pub(super) fn finish(
        self,
        gpu: &Gpu,
        index: wgpu::SubmissionIndex,
        timeout: Option<std::time::Duration>,
    ) -> Result<RunMetadata> {
        let timed = self.queries.is_some();
        let kernels = match self.queries {
            Some(q) if !q.labels.is_empty() => {
                let n = q.labels.len() * 2;
                let layout = [(0, DType::U32, vec![n * 2])];
                let words = map_and_read(&gpu.device, &q.staging, index, &layout, timeout)?;
                let ticks: Vec<u64> = words
                    .first()
                    .map(|h| {
                        h.bytes()
                            .chunks_exact(8)
                            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                            .collect()
                    })
                    .unwrap_or_default();
                let tick = f64::from(gpu.queue.get_timestamp_period());
                let at = |k: usize| ticks.get(k).copied().unwrap_or(0) as f64 * tick;
                let origin = at(0);
                q.labels
                    .into_iter()
                    .enumerate()
                    .map(|(k, (node, kernel))| KernelTime {
                        node,
                        kernel,
                        start_ns: at(2 * k) - origin,
                        duration_ns: (at(2 * k + 1) - at(2 * k)).max(0.0),
                    })
                    .collect()
            }
            _ => self.untimed,
        };
        Ok(RunMetadata { kernels, timed })
    }
}

/// Records `steps` into `enc`: each kernel in a compute pass of its own (timed where
/// the adapter can) when there is a `tracer`, else consecutive kernels in one pass.
pub(super) fn encode(
    enc: &mut wgpu::CommandEncoder,
    steps: &[Step],
    mut tracer: Option<&mut Tracer>,
) {
    let mut i = 0;
    while i < steps.len() {
        match &steps[i] {
            Step::Dispatch {
                pipeline,
                bind_group,
                groups,
                node,
                entry,
            } if tracer.is_some() => {
                let timestamp_writes = tracer.as_mut().and_then(|t| t.pass_writes(node, entry));
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(entry),
                    timestamp_writes,
                });
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, bind_group, &[]);
                pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
                i += 1;
            }
            Step::Dispatch { .. } => {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: None,
                });
                while let Some(Step::Dispatch {
                    pipeline,
                    bind_group,
                    groups,
                    ..
                }) = steps.get(i)
                {
                    pass.set_pipeline(pipeline);
                    pass.set_bind_group(0, bind_group, &[]);
                    pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
                    i += 1;
                }
            }
            Step::Copy {
                src,
                src_offset,
                dst,
                dst_offset,
                size,
            } => {
                enc.copy_buffer_to_buffer(src, *src_offset, dst, *dst_offset, *size);
                i += 1;
            }
            Step::Clear { buf, offset, size } => {
                enc.clear_buffer(buf, *offset, Some(*size));
                i += 1;
            }
        }
    }
}
