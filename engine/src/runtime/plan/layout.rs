//! Where fetched and snapshotted tensors land in a staging buffer, and the device copies
//! that put them there.

use crate::runtime::kernels::Loc;
use crate::tensor::DType;

/// Where one fetched or snapshotted tensor is copied to in a staging buffer.
pub(crate) struct Slot {
    pub loc: Loc,
    pub offset: u64,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl Slot {
    /// Device bytes of the tensor.
    pub fn bytes(&self) -> u64 {
        (self.shape.iter().product::<usize>() * self.dtype.device_size()) as u64
    }
}

/// Where each tensor sits in a staging buffer: (offset, dtype, shape).
pub(crate) type ReadLayout = Vec<(u64, DType, Vec<usize>)>;

pub(super) fn read_layout(slots: &[Slot]) -> ReadLayout {
    slots
        .iter()
        .map(|s| (s.offset, s.dtype, s.shape.clone()))
        .collect()
}

fn align8(x: u64) -> u64 {
    x.div_ceil(8) * 8
}

/// Lays out `slots` for `tensors` one after another (8-byte aligned); returns the total.
pub(super) fn layout(
    slots: &mut Vec<Slot>,
    tensors: impl Iterator<Item = (Loc, DType, Vec<usize>)>,
) -> u64 {
    let mut offset = 0;
    for (loc, dtype, shape) in tensors {
        let slot = Slot {
            loc,
            offset,
            dtype,
            shape,
        };
        offset += align8(slot.bytes());
        slots.push(slot);
    }
    offset
}

/// A device copy into a staging buffer: (source buffer, source offset, staging offset,
/// bytes).
pub(crate) type StagingCopy = (wgpu::Buffer, u64, u64, u64);

/// Lays out a snapshot's variables so that those sharing a buffer (an arena's views)
/// are copied with one command: each buffer's span from its first to its last
/// snapshotted byte lands in the staging buffer as it lies on the device, unless the
/// span is mostly other tensors, when each variable is copied alone. Returns the
/// slots (in the given order), the copies and the staging size.
pub(super) fn snapshot_layout(
    vars: Vec<(Loc, DType, Vec<usize>)>,
) -> (Vec<Slot>, Vec<StagingCopy>, u64) {
    let mut slots: Vec<Slot> = vars
        .into_iter()
        .map(|(loc, dtype, shape)| Slot {
            loc,
            offset: 0,
            dtype,
            shape,
        })
        .collect();
    // Group the slots by buffer, in order of first appearance.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for i in 0..slots.len() {
        match groups
            .iter_mut()
            .find(|g| slots[g[0]].loc.buf == slots[i].loc.buf)
        {
            Some(g) => g.push(i),
            None => groups.push(vec![i]),
        }
    }
    let mut copies = Vec::new();
    let mut base = 0u64;
    let mut copy = |buf: &wgpu::Buffer, src: u64, len: u64, base: &mut u64| {
        let len = len.div_ceil(4) * 4;
        copies.push((buf.clone(), src, *base, len));
        let at = *base;
        *base += align8(len);
        at
    };
    for g in groups {
        let lo = g.iter().map(|&i| slots[i].loc.offset).min().unwrap_or(0);
        let hi = g
            .iter()
            .map(|&i| slots[i].loc.offset + slots[i].bytes())
            .max()
            .unwrap_or(0);
        let used: u64 = g.iter().map(|&i| slots[i].bytes()).sum();
        if g.len() > 1 && hi - lo <= 2 * used + 4096 {
            let buf = slots[g[0]].loc.buf.clone();
            let at = copy(&buf, lo, hi - lo, &mut base);
            for &i in &g {
                slots[i].offset = at + slots[i].loc.offset - lo;
            }
        } else {
            for &i in &g {
                let (buf, src, len) = (
                    slots[i].loc.buf.clone(),
                    slots[i].loc.offset,
                    slots[i].bytes(),
                );
                if len > 0 {
                    slots[i].offset = copy(&buf, src, len, &mut base);
                } else {
                    slots[i].offset = base;
                }
            }
        }
    }
    (slots, copies, base)
}
