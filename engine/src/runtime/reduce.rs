//! Data-parallel gradient averaging inside a run: the [`GradientReducer`] seam, the
//! schedule order that puts every averaged gradient before anything that reads one, and
//! the reduce point of a plan (where the run's device work is split in two submissions
//! around one host all-reduce).
//!
//! A run whose schedule contains gradients marked with
//! [`Graph::average_across_replicas`](crate::Graph::average_across_replicas) and whose
//! session has a reducer executes as: the backward pass (every node that does not
//! depend on a marked gradient) → one device copy of the marked gradients into a staging
//! buffer → submit and map → the reducer replaces them by their mean over the
//! processes → written back → the rest (clipping, the optimizer update, the fetches).
//! That is the one host round trip an all-reduce on the host needs.

use super::kernels::Loc;
use super::plan::{Slot, StagingCopy};
use crate::error::{Error, Result};
use crate::exec::Schedule;
use crate::graph::Node;
use std::collections::HashSet;

/// The order of `sched` with every node that depends (by value or control) on a marked
/// gradient moved after every other node, and the marked gradients the run computes.
/// `None` when the run computes none. A marked gradient computed from another is
/// InvalidArgument: both cannot be averaged in one all-reduce.
pub(crate) fn reorder(
    nodes: &[Node],
    sched: &Schedule,
    marked: &[crate::graph::Tensor],
) -> Result<Option<(Schedule, Vec<usize>, usize)>> {
    let in_run: HashSet<usize> = sched.order.iter().copied().collect();
    let reduced: Vec<usize> = marked
        .iter()
        .map(|t| t.index())
        .filter(|i| in_run.contains(i))
        .filter(|&i| !nodes[i].op.is_constant())
        .collect();
    if reduced.is_empty() {
        return Ok(None);
    }
    let set: HashSet<usize> = reduced.iter().copied().collect();
    let mut after: HashSet<usize> = HashSet::new();
    for &i in &sched.order {
        if sched.fed.contains(&i) {
            continue;
        }
        let n = &nodes[i];
        let reads = n
            .inputs
            .iter()
            .map(|t| t.index())
            .chain(n.control_inputs.iter().map(|o| o.index()))
            .find(|d| set.contains(d) || after.contains(d));
        if let Some(d) = reads {
            if set.contains(&i) {
                return Err(Error::invalid_argument(format!(
                    "gradient '{}' is computed from gradient '{}': both cannot be averaged across replicas in one step",
                    n.name, nodes[d].name
                )));
            }
            after.insert(i);
        }
    }
    let mut order: Vec<usize> = sched
        .order
        .iter()
        .copied()
        .filter(|i| !after.contains(i))
        .collect();
    let cut = order.len();
    order.extend(sched.order.iter().copied().filter(|i| after.contains(i)));
    let sched = Schedule {
        order,
        ..sched.clone()
    };
    Ok(Some((sched, reduced, cut)))
}

/// Where a planned run averages its gradients.
pub(crate) struct ReducePoint {
    /// Steps recorded before the all-reduce.
    pub at: usize,
    /// Each gradient's device location and its offset in the staging buffer.
    pub slots: Vec<Slot>,
    /// Device copies into the staging buffer (an arena's views in one copy).
    pub copies: Vec<StagingCopy>,
    /// Mapped after the first submission.
    pub staging: wgpu::Buffer,
    /// f32 words averaged per run.
    pub words: usize,
}

impl ReducePoint {
    /// Bytes averaged per run.
    pub fn bytes(&self) -> u64 {
        self.words as u64 * 4
    }

    /// Copies the gradients out of the mapped staging bytes, packed.
    pub fn pack(&self, mapped: &[u8]) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.words);
        for s in &self.slots {
            let at = s.offset as usize;
            let bytes = &mapped[at..at + s.bytes() as usize];
            out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
        }
        out
    }

    /// Each gradient's location and its averaged bytes.
    pub fn unpack<'a>(&'a self, packed: &'a [f32]) -> impl Iterator<Item = (&'a Loc, &'a [u8])> {
        let mut at = 0usize;
        self.slots.iter().map(move |s| {
            let n = s.bytes() as usize / 4;
            let words = &packed[at..at + n];
            at += n;
            (&s.loc, bytemuck::cast_slice(words))
        })
    }
}
