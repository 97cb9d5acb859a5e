//! TF's V2 tensor bundle: `<prefix>.index` (a [`table`](crate::table) mapping "" to a
//! `BundleHeaderProto` and each tensor name to a `BundleEntryProto`) and
//! `<prefix>.data-00000-of-00001` (the tensors' bytes back to back, in name order).
//!
//! Writing is crash-safe: both files are written under temporary names, synced, and
//! renamed data first, index last, so a complete `.index` always describes a complete
//! data file. Reading verifies every table block and every tensor's CRC32C, and reports
//! a mismatch or a truncated file as DataLoss naming the file and the tensor.

use crate::crc::{mask, masked_crc32c};
use crate::error::{Code, Error, Result};
use crate::proto::{BundleEntryProto, BundleHeaderProto, Dim, TensorShapeProto, VersionDef};
use crate::table::{Table, TableBuilder};
use crate::tensor::{Data, Tensor, TfDType};
use prost::Message;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// `<prefix>.index`.
pub fn index_path(prefix: &Path) -> PathBuf {
    suffixed(prefix, ".index")
}

/// The data file of shard `shard` of `shards`.
pub fn data_path(prefix: &Path, shard: usize, shards: usize) -> PathBuf {
    suffixed(prefix, &format!(".data-{shard:05}-of-{shards:05}"))
}

fn suffixed(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::io(path.display(), &e)
}

/// The file operations of a save, in order; a test makes one fail to check that a
/// crash between any two leaves no checkpoint that reads wrong.
pub trait Fault {
    /// Called before each file operation `what`; an error aborts the save there.
    fn before(&mut self, what: &str) -> Result<()>;
}

/// No faults.
pub struct NoFault;

impl Fault for NoFault {
    fn before(&mut self, _: &str) -> Result<()> {
        Ok(())
    }
}

/// The bytes of `t` as a bundle stores them, and their masked CRC32C.
pub fn encode(t: &Tensor) -> (Vec<u8>, u32) {
    match &t.data {
        Data::Bytes(b) => (b.clone(), masked_crc32c(b)),
        Data::Strings(strings) => {
            // [varint64 len]... [masked crc of the lengths] [bytes]...; the checksum
            // covers the lengths as 4-byte integers (as TF 2 computes it), that masked
            // checksum, and the bytes.
            let mut out = Vec::new();
            let mut crc = 0u32;
            for s in strings {
                let mut v = s.len() as u64;
                while v >= 0x80 {
                    out.push((v as u8) | 0x80);
                    v >>= 7;
                }
                out.push(v as u8);
                crc = crc32c::crc32c_append(crc, &(s.len() as u32).to_le_bytes());
            }
            let lengths = mask(crc);
            out.extend_from_slice(&lengths.to_le_bytes());
            crc = crc32c::crc32c_append(crc, &lengths.to_le_bytes());
            for s in strings {
                out.extend_from_slice(s);
                crc = crc32c::crc32c_append(crc, s);
            }
            (out, mask(crc))
        }
    }
}

fn shape_proto(shape: &[usize]) -> TensorShapeProto {
    TensorShapeProto {
        dim: shape
            .iter()
            .map(|&d| Dim {
                size: d as i64,
                name: String::new(),
            })
            .collect(),
        unknown_rank: false,
    }
}

/// The bytes of both files of a bundle of `tensors` (names unique; any order).
pub fn serialize(tensors: &[(String, Tensor)]) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut sorted: Vec<&(String, Tensor)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::invalid_argument(format!(
            "two tensors named '{}' in one checkpoint",
            w[0].0
        )));
    }
    if let Some(e) = sorted.iter().find(|t| t.0.is_empty()) {
        return Err(Error::invalid_argument(format!(
            "a tensor of shape {:?} has an empty name",
            e.1.shape
        )));
    }
    let header = BundleHeaderProto {
        num_shards: 1,
        endianness: 0,
        version: Some(VersionDef {
            producer: 1,
            min_consumer: 0,
            bad_consumers: vec![],
        }),
    };
    let mut table = TableBuilder::new();
    table.add(b"", &header.encode_to_vec())?;
    let mut data = Vec::new();
    for (name, t) in sorted {
        let (bytes, crc) = encode(t);
        let entry = BundleEntryProto {
            dtype: t.dtype.code(),
            shape: Some(shape_proto(&t.shape)),
            shard_id: 0,
            offset: data.len() as i64,
            size: bytes.len() as i64,
            crc32c: crc,
            slices: vec![],
        };
        data.extend_from_slice(&bytes);
        table.add(name.as_bytes(), &entry.encode_to_vec())?;
    }
    Ok((table.finish(), data))
}

/// A unique temporary name beside `path`.
fn temp_for(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    suffixed(path, &format!(".tempstate{}_{n}", std::process::id()))
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
pub(crate) fn write_atomic(
    path: &Path,
    bytes: &[u8],
    fault: &mut dyn Fault,
    what: &str,
) -> Result<()> {
    let tmp = temp_for(path);
    let r = (|| {
        fault.before(&format!("write {what}"))?;
        let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| io(&tmp, e))?;
        fault.before(&format!("sync {what}"))?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
        fault.before(&format!("rename {what}"))?;
        std::fs::rename(&tmp, path).map_err(|e| io(path, e))
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// Syncs the directory holding `path` so renames in it survive a crash.
pub(crate) fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Writes a bundle at `prefix` (see the module doc for the order of operations).
pub fn write_bundle(prefix: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    write_bundle_with(prefix, tensors, &mut NoFault)
}

/// [`write_bundle`] with a fault injector.
pub fn write_bundle_with(
    prefix: &Path,
    tensors: &[(String, Tensor)],
    fault: &mut dyn Fault,
) -> Result<()> {
    let (index, data) = serialize(tensors)?;
    write_atomic(&data_path(prefix, 0, 1), &data, fault, "data")?;
    write_atomic(&index_path(prefix), &index, fault, "index")?;
    sync_dir(prefix);
    Ok(())
}

/// What the index says of one tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The dtype.
    pub dtype: TfDType,
    /// The shape.
    pub shape: Vec<usize>,
    /// The raw entry.
    pub proto: BundleEntryProto,
}

/// An open bundle: its index parsed and verified, its data read on demand.
pub struct BundleReader {
    prefix: PathBuf,
    /// The header.
    pub header: BundleHeaderProto,
    entries: BTreeMap<String, Entry>,
    /// The parsed index table (for layout checks).
    pub table: Table,
}

impl BundleReader {
    /// Opens the bundle at `prefix`: NotFound without its `.index`, DataLoss for a
    /// damaged one.
    pub fn open(prefix: impl AsRef<Path>) -> Result<BundleReader> {
        let prefix = prefix.as_ref().to_path_buf();
        let ipath = index_path(&prefix);
        let bytes = std::fs::read(&ipath).map_err(|e| io(&ipath, e))?;
        let file = ipath.display().to_string();
        let table = Table::parse(&bytes, &file)?;
        let loss = |what: String| Error::new(Code::DataLoss, format!("{file}: {what}"));
        let mut header = None;
        let mut entries = BTreeMap::new();
        for (k, v) in &table.entries {
            if k.is_empty() {
                header = Some(
                    BundleHeaderProto::decode(v.as_slice())
                        .map_err(|e| loss(format!("bad bundle header: {e}")))?,
                );
                continue;
            }
            let name = String::from_utf8_lossy(k).into_owned();
            let proto = BundleEntryProto::decode(v.as_slice())
                .map_err(|e| loss(format!("bad entry for '{name}': {e}")))?;
            let dtype = TfDType::from_code(proto.dtype).ok_or_else(|| {
                Error::unimplemented(format!(
                    "{file}: tensor '{name}' has DataType {}, which wgtrain does not read",
                    proto.dtype
                ))
            })?;
            let shape = proto
                .shape
                .as_ref()
                .map(|s| s.dim.iter().map(|d| d.size.max(0) as usize).collect())
                .unwrap_or_default();
            if !proto.slices.is_empty() {
                return Err(Error::unimplemented(format!(
                    "{file}: tensor '{name}' is partitioned into slices, which wgtrain does not read"
                )));
            }
            entries.insert(
                name,
                Entry {
                    dtype,
                    shape,
                    proto,
                },
            );
        }
        let header = header.ok_or_else(|| loss("no bundle header".into()))?;
        if header.endianness != 0 {
            return Err(Error::unimplemented(format!(
                "{file}: big-endian bundles are not supported"
            )));
        }
        Ok(BundleReader {
            prefix,
            header,
            entries,
            table,
        })
    }

    /// The prefix.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// Every tensor: name, dtype and shape, in name order.
    pub fn list(&self) -> Vec<(String, TfDType, Vec<usize>)> {
        self.entries
            .iter()
            .map(|(n, e)| (n.clone(), e.dtype, e.shape.clone()))
            .collect()
    }

    /// The index entry of `name`.
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// Whether the bundle holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Reads and verifies tensor `name`: NotFound when absent, DataLoss when its bytes
    /// are truncated or fail their checksum.
    pub fn get(&self, name: &str) -> Result<Tensor> {
        let e = self.entries.get(name).ok_or_else(|| {
            Error::new(
                Code::NotFound,
                format!(
                    "tensor '{name}' is not in the checkpoint {}",
                    self.prefix.display()
                ),
            )
        })?;
        let shards = self.header.num_shards.max(1) as usize;
        let path = data_path(&self.prefix, e.proto.shard_id.max(0) as usize, shards);
        let file = path.display().to_string();
        let loss =
            |what: String| Error::new(Code::DataLoss, format!("{file}: tensor '{name}': {what}"));
        let mut f = File::open(&path).map_err(|err| io(&path, err))?;
        let len = f.metadata().map_err(|err| io(&path, err))?.len();
        let (off, size) = (e.proto.offset.max(0) as u64, e.proto.size.max(0) as u64);
        if off + size > len {
            return Err(loss(format!(
                "bytes {off}..{} lie past the end of the {len}-byte file (truncated)",
                off + size
            )));
        }
        f.seek(SeekFrom::Start(off)).map_err(|err| io(&path, err))?;
        let mut bytes = vec![0u8; size as usize];
        f.read_exact(&mut bytes).map_err(|err| io(&path, err))?;
        // Shapes come from the file: counted without overflow, and checked against the
        // bytes before anything of that size is allocated.
        let n = e
            .shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| loss(format!("shape {:?} has too many elements", e.shape)))?;
        let t = match e.dtype.size() {
            Some(s) => {
                if s.checked_mul(n) != Some(bytes.len()) {
                    return Err(loss(format!(
                        "{} bytes for {n} elements of {}",
                        bytes.len(),
                        e.dtype
                    )));
                }
                Tensor::from_bytes(e.dtype, &e.shape, bytes)?
            }
            None => decode_strings(&bytes, n)
                .map_err(loss)
                .and_then(|s| Tensor::from_strings(&e.shape, s))?,
        };
        let (_, crc) = encode(&t);
        if crc != e.proto.crc32c {
            return Err(loss(format!(
                "checksum mismatch (stored {:#010x}, computed {crc:#010x}): the data is corrupt",
                e.proto.crc32c
            )));
        }
        Ok(t)
    }

    /// Reads every tensor, verifying each: (name, result) in name order.
    pub fn verify(&self) -> Vec<(String, Result<()>)> {
        self.entries
            .keys()
            .map(|n| (n.clone(), self.get(n).map(|_| ())))
            .collect()
    }
}

fn decode_strings(b: &[u8], n: usize) -> std::result::Result<Vec<Vec<u8>>, String> {
    // Every string takes at least one byte of length.
    if n > b.len() {
        return Err(format!("{n} strings cannot fit in {} bytes", b.len()));
    }
    let mut at = 0;
    let mut lens = Vec::with_capacity(n);
    for _ in 0..n {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let byte = *b.get(at).ok_or("string lengths run past the end")?;
            at += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err("bad string length".into());
            }
        }
        lens.push(v as usize);
    }
    at += 4;
    let mut out = Vec::with_capacity(n);
    for l in lens {
        let end = at.checked_add(l).ok_or("bad string length")?;
        let s = b.get(at..end).ok_or("string bytes run past the end")?;
        out.push(s.to_vec());
        at = end;
    }
    Ok(out)
}

#[cfg(test)]
mod string_tests {
    use super::decode_strings;

    #[test]
    fn a_string_count_the_bytes_cannot_hold_is_refused_before_allocating() {
        // A shape claiming 2^40 strings over 12 bytes: refused, not reserved (this
        // aborted the CLI with a 34 GB allocation).
        let e = decode_strings(&[1, 1, 0, 0, 0, 0, b'a', b'b'], 1 << 40).unwrap_err();
        assert!(e.contains("cannot fit"), "{e}");
        // A length past the end of the address space is an error, not an overflow.
        let huge = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0, 0,
        ];
        assert!(decode_strings(&huge, 1).is_err());
        assert_eq!(
            decode_strings(&[1, 2, 0, 0, 0, 0, b'a', b'b', b'c'], 2).unwrap(),
            vec![b"a".to_vec(), b"bc".to_vec()]
        );
    }
}
