//! LevelDB's sorted string table, as TF writes a bundle's `.index`: uncompressed blocks
//! of prefix-compressed keys with restart points every 16 entries, each followed by a
//! type byte and the masked CRC32C of both, an empty metaindex block, an index block
//! (restart interval 1) of shortened separator keys, and a 48-byte footer ending in the
//! table magic.

use crate::error::{Code, Error, Result};

/// TF's table options: 256 KiB blocks, a restart point every 16 keys.
pub const BLOCK_SIZE: usize = 262_144;
const RESTART_INTERVAL: usize = 16;
const MAGIC: u64 = 0xdb47_7524_8b80_fb57;
const FOOTER: usize = 48;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// One block being built.
struct Block {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    counter: usize,
    interval: usize,
    last: Vec<u8>,
}

impl Block {
    fn new(interval: usize) -> Block {
        Block {
            buf: Vec::new(),
            restarts: vec![0],
            counter: 0,
            interval,
            last: Vec::new(),
        }
    }

    fn add(&mut self, key: &[u8], value: &[u8]) {
        let mut shared = 0;
        if self.counter < self.interval {
            shared = self
                .last
                .iter()
                .zip(key)
                .take_while(|(a, b)| a == b)
                .count();
        } else {
            self.restarts.push(self.buf.len() as u32);
            self.counter = 0;
        }
        put_varint(&mut self.buf, shared as u64);
        put_varint(&mut self.buf, (key.len() - shared) as u64);
        put_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(&key[shared..]);
        self.buf.extend_from_slice(value);
        self.last = key.to_vec();
        self.counter += 1;
    }

    fn size_estimate(&self) -> usize {
        self.buf.len() + self.restarts.len() * 4 + 4
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        for r in &self.restarts {
            out.extend_from_slice(&r.to_le_bytes());
        }
        out.extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        self.restarts = vec![0];
        self.counter = 0;
        self.last.clear();
        out
    }
}

/// The shortest key `>= start` and `< limit` (LevelDB's bytewise comparator).
fn shortest_separator(start: &[u8], limit: &[u8]) -> Vec<u8> {
    let common = start.iter().zip(limit).take_while(|(a, b)| a == b).count();
    if common < start.len().min(limit.len()) {
        let b = start[common];
        if b < 0xff && b + 1 < limit[common] {
            let mut k = start[..=common].to_vec();
            k[common] += 1;
            return k;
        }
    }
    start.to_vec()
}

/// The shortest key `>= key`.
fn short_successor(key: &[u8]) -> Vec<u8> {
    for (i, &b) in key.iter().enumerate() {
        if b != 0xff {
            let mut k = key[..=i].to_vec();
            k[i] += 1;
            return k;
        }
    }
    key.to_vec()
}

/// Builds a table in memory from keys added in strictly increasing order.
pub struct TableBuilder {
    out: Vec<u8>,
    data: Block,
    index: Block,
    last_key: Vec<u8>,
    /// The handle of the last flushed block, waiting for the next key to pick its
    /// index key.
    pending: Option<(u64, u64)>,
    entries: usize,
}

impl Default for TableBuilder {
    fn default() -> Self {
        TableBuilder::new()
    }
}

impl TableBuilder {
    /// An empty table.
    pub fn new() -> TableBuilder {
        TableBuilder {
            out: Vec::new(),
            data: Block::new(RESTART_INTERVAL),
            index: Block::new(1),
            last_key: Vec::new(),
            pending: None,
            entries: 0,
        }
    }

    /// Adds `key` (greater than every key before) with `value`.
    pub fn add(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        if self.entries > 0 && key <= self.last_key.as_slice() {
            return Err(Error::internal(format!(
                "table keys out of order: {:?} after {:?}",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(&self.last_key)
            )));
        }
        if let Some(h) = self.pending.take() {
            let sep = shortest_separator(&self.last_key, key);
            self.index.add(&sep, &handle(h));
        }
        self.data.add(key, value);
        self.last_key = key.to_vec();
        self.entries += 1;
        if self.data.size_estimate() >= BLOCK_SIZE {
            self.flush();
        }
        Ok(())
    }

    fn flush(&mut self) {
        if self.data.is_empty() {
            return;
        }
        let contents = self.data.finish();
        self.pending = Some(self.write_block(&contents));
    }

    fn write_block(&mut self, contents: &[u8]) -> (u64, u64) {
        let offset = self.out.len() as u64;
        self.out.extend_from_slice(contents);
        let mut crc = crc32c::crc32c(contents);
        crc = crc32c::crc32c_append(crc, &[0]);
        self.out.push(0);
        self.out
            .extend_from_slice(&crate::crc::mask(crc).to_le_bytes());
        (offset, contents.len() as u64)
    }

    /// The table's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.flush();
        if let Some(h) = self.pending.take() {
            let succ = short_successor(&self.last_key);
            self.index.add(&succ, &handle(h));
        }
        let meta = Block::new(RESTART_INTERVAL).finish();
        let meta_handle = self.write_block(&meta);
        let index = self.index.finish();
        let index_handle = self.write_block(&index);
        let mut footer = handle(meta_handle);
        footer.extend_from_slice(&handle(index_handle));
        footer.resize(FOOTER - 8, 0);
        footer.extend_from_slice(&(MAGIC as u32).to_le_bytes());
        footer.extend_from_slice(&((MAGIC >> 32) as u32).to_le_bytes());
        self.out.extend_from_slice(&footer);
        self.out
    }
}

fn handle((offset, size): (u64, u64)) -> Vec<u8> {
    let mut v = Vec::new();
    put_varint(&mut v, offset);
    put_varint(&mut v, size);
    v
}

/// Where a block lies, and what a table's layout is (for tests against TF's files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// Offset in the file.
    pub offset: u64,
    /// Size without the 5-byte trailer.
    pub size: u64,
    /// Entries in the block.
    pub entries: usize,
    /// Restart points.
    pub restarts: usize,
    /// The index key pointing at the block (data blocks only).
    pub separator: Vec<u8>,
}

/// A parsed table: every entry in order, and its block layout.
#[derive(Clone, Debug)]
pub struct Table {
    /// (key, value) in key order.
    pub entries: Entries,
    /// The data blocks.
    pub data_blocks: Vec<BlockInfo>,
    /// The index block.
    pub index_block: BlockInfo,
    /// The metaindex block.
    pub metaindex_block: BlockInfo,
}

fn loss(file: &str, what: impl std::fmt::Display) -> Error {
    Error::new(Code::DataLoss, format!("{file}: {what}"))
}

/// The verified contents of the block at `(offset, size)`.
fn read_block<'a>(b: &'a [u8], h: (u64, u64), file: &str) -> Result<&'a [u8]> {
    let (o, s) = (h.0 as usize, h.1 as usize);
    let end = o
        .checked_add(s)
        .and_then(|e| e.checked_add(5))
        .filter(|&e| e <= b.len())
        .ok_or_else(|| {
            loss(
                file,
                format!("block at {o} of {s} bytes runs past the end (truncated?)"),
            )
        })?;
    let contents = &b[o..o + s];
    let ty = b[o + s];
    let stored = u32::from_le_bytes([b[o + s + 1], b[o + s + 2], b[o + s + 3], b[end - 1]]);
    if ty != 0 {
        return Err(loss(
            file,
            format!("block at {o} is compressed (type {ty}); not supported"),
        ));
    }
    let crc = crc32c::crc32c_append(crc32c::crc32c(contents), &[ty]);
    if crate::crc::mask(crc) != stored {
        return Err(loss(
            file,
            format!("checksum mismatch in the block at offset {o}"),
        ));
    }
    Ok(contents)
}

/// The entries of a block.
/// (key, value) pairs in order.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

fn block_entries(c: &[u8], file: &str) -> Result<(Entries, usize)> {
    if c.len() < 4 {
        return Err(loss(file, "block too short"));
    }
    let n = u32::from_le_bytes([
        c[c.len() - 4],
        c[c.len() - 3],
        c[c.len() - 2],
        c[c.len() - 1],
    ]) as usize;
    let restarts_at = c
        .len()
        .checked_sub(4 + 4 * n)
        .ok_or_else(|| loss(file, "bad restart array"))?;
    let mut out = Vec::new();
    let mut at = 0;
    let mut key: Vec<u8> = Vec::new();
    while at < restarts_at {
        let start = at;
        let bad = || loss(file, format!("bad block entry at {start}"));
        let shared = get_varint(c, &mut at).ok_or_else(bad)? as usize;
        let non_shared = get_varint(c, &mut at).ok_or_else(bad)? as usize;
        let vlen = get_varint(c, &mut at).ok_or_else(bad)? as usize;
        let end = at + non_shared + vlen;
        if shared > key.len() || end > restarts_at {
            return Err(bad());
        }
        key.truncate(shared);
        key.extend_from_slice(&c[at..at + non_shared]);
        out.push((key.clone(), c[at + non_shared..end].to_vec()));
        at = end;
    }
    Ok((out, n))
}

fn parse_handle(v: &[u8], at: &mut usize, file: &str) -> Result<(u64, u64)> {
    let o = get_varint(v, at).ok_or_else(|| loss(file, "bad block handle"))?;
    let s = get_varint(v, at).ok_or_else(|| loss(file, "bad block handle"))?;
    Ok((o, s))
}

impl Table {
    /// Parses and verifies a whole table; `file` names it in errors (DataLoss for a
    /// bad magic, checksum or truncation).
    pub fn parse(b: &[u8], file: &str) -> Result<Table> {
        if b.len() < FOOTER {
            return Err(loss(
                file,
                format!("{} bytes is too short for a table (truncated?)", b.len()),
            ));
        }
        let f = &b[b.len() - FOOTER..];
        let magic = u64::from(u32::from_le_bytes([f[40], f[41], f[42], f[43]]))
            | (u64::from(u32::from_le_bytes([f[44], f[45], f[46], f[47]])) << 32);
        if magic != MAGIC {
            return Err(loss(
                file,
                "not a table (bad magic; truncated or not an index file?)",
            ));
        }
        let mut at = 0;
        let meta = parse_handle(f, &mut at, file)?;
        let idx = parse_handle(f, &mut at, file)?;
        let meta_c = read_block(b, meta, file)?;
        let (meta_e, meta_r) = block_entries(meta_c, file)?;
        let idx_c = read_block(b, idx, file)?;
        let (idx_e, idx_r) = block_entries(idx_c, file)?;
        let mut entries = Vec::new();
        let mut data_blocks = Vec::new();
        for (sep, h) in &idx_e {
            let mut at = 0;
            let h = parse_handle(h, &mut at, file)?;
            let c = read_block(b, h, file)?;
            let (e, r) = block_entries(c, file)?;
            data_blocks.push(BlockInfo {
                offset: h.0,
                size: h.1,
                entries: e.len(),
                restarts: r,
                separator: sep.clone(),
            });
            entries.extend(e);
        }
        if entries.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(loss(file, "keys out of order"));
        }
        Ok(Table {
            entries,
            data_blocks,
            index_block: BlockInfo {
                offset: idx.0,
                size: idx.1,
                entries: idx_e.len(),
                restarts: idx_r,
                separator: Vec::new(),
            },
            metaindex_block: BlockInfo {
                offset: meta.0,
                size: meta.1,
                entries: meta_e.len(),
                restarts: meta_r,
                separator: Vec::new(),
            },
        })
    }
}
