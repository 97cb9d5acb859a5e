//! TensorBoard event files: TFRecord framing of `Event` protos, a reader that verifies
//! every checksum, and an asynchronous writer shared per directory.
//!
//! A record is `u64 length | masked CRC32C of those 8 bytes | payload | masked CRC32C
//! of the payload`, little endian. A file is named
//! `events.out.tfevents.<10-digit seconds>.<hostname>.<pid>.<counter><suffix>` (TF 2's
//! scheme: two writers, or two runs started within one second, never share a name, and a
//! writer never truncates an existing file) and begins with an event whose
//! `file_version` is `brain.Event:2`.

use crate::crc::masked_crc32c;
use crate::error::{Code, Error, Result};
use crate::proto::{
    DeviceStepStats, Event, HistogramProto, Image, NodeExecStats, PluginData, RunMetadataProto,
    SessionLog, StepStats, Summary, SummaryMetadata, SummaryValue, SummaryValueKind,
    TaggedRunMetadata, TensorProto, TensorShapeProto, What,
};
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wgtrain_engine::summary::{MergedSummary, SummaryKind};
use wgtrain_engine::{DType, HostTensor, Snapshot, Worker, WorkerOptions};

/// The first event's `file_version`.
pub const FILE_VERSION: &str = "brain.Event:2";

/// Seconds since the epoch.
pub fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One framed record.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(payload.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&masked_crc32c(payload).to_le_bytes());
    out
}

/// An event read from a file, with where its record starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Offset of the record in the file.
    pub offset: u64,
    /// Bytes of the serialized event.
    pub payload_len: usize,
    /// The event.
    pub event: Event,
}

/// Reads every event of a file's bytes: the events before a damaged record, and the
/// damage: DataLoss naming `file` and the offset of the bad record (a checksum
/// mismatch, or a truncated last record — a writer that died mid-write).
pub fn read_records(bytes: &[u8], file: &str) -> (Vec<Record>, Option<Error>) {
    let mut out = Vec::new();
    let mut at = 0usize;
    let loss = |at: usize, what: &str| {
        Error::new(
            Code::DataLoss,
            format!("{file}: record at offset {at}: {what}"),
        )
    };
    while at < bytes.len() {
        if bytes.len() - at < 12 {
            return (
                out,
                Some(loss(at, "truncated length (the writer stopped mid-record)")),
            );
        }
        let len_bytes: [u8; 8] = bytes[at..at + 8].try_into().unwrap_or([0; 8]);
        let len_crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap_or([0; 4]));
        if masked_crc32c(&len_bytes) != len_crc {
            return (out, Some(loss(at, "length checksum mismatch")));
        }
        let len = u64::from_le_bytes(len_bytes) as usize;
        let end = at
            .checked_add(12)
            .and_then(|v| v.checked_add(len))
            .and_then(|v| v.checked_add(4));
        let Some(end) = end.filter(|&e| e <= bytes.len()) else {
            return (
                out,
                Some(loss(
                    at,
                    "truncated payload (the writer stopped mid-record)",
                )),
            );
        };
        let payload = &bytes[at + 12..at + 12 + len];
        let crc = u32::from_le_bytes(bytes[end - 4..end].try_into().unwrap_or([0; 4]));
        if masked_crc32c(payload) != crc {
            return (out, Some(loss(at, "payload checksum mismatch")));
        }
        match Event::decode(payload) {
            Ok(event) => out.push(Record {
                offset: at as u64,
                payload_len: len,
                event,
            }),
            Err(e) => return (out, Some(loss(at, &format!("not an Event: {e}")))),
        }
        at = end;
    }
    (out, None)
}

/// Reads a whole event file; see [`read_records`].
pub fn read_file(path: &Path) -> Result<(Vec<Record>, Option<Error>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path.display(), &e))?;
    Ok(read_records(&bytes, &path.display().to_string()))
}

/// The event files of `dir`, oldest first (by name, which starts with the time).
pub fn event_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir.display(), &e))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains("tfevents"))
        })
        .collect();
    v.sort();
    Ok(v)
}

// ---------------------------------------------------------------------------------
// Summary values.

/// A scalar summary value.
pub fn scalar(tag: &str, value: f32) -> SummaryValue {
    SummaryValue {
        tag: tag.to_string(),
        value: Some(SummaryValueKind::SimpleValue(value)),
        ..Default::default()
    }
}

/// TF's default histogram bucket limits: ±1e-12 growing by 1.1 to 1e20, zero, and
/// ±f64::MAX at the ends.
pub fn default_buckets() -> &'static [f64] {
    static B: OnceLock<Vec<f64>> = OnceLock::new();
    B.get_or_init(|| {
        let mut pos = Vec::new();
        let mut v = 1.0e-12;
        while v < 1.0e20 {
            pos.push(v);
            v *= 1.1;
        }
        pos.push(f64::MAX);
        let mut out: Vec<f64> = pos.iter().rev().map(|v| -v).collect();
        out.push(0.0);
        out.extend(pos);
        out
    })
}

/// A histogram of `values` with TF's default buckets, empty runs collapsed into one
/// bucket as TF's `Histogram::EncodeToProto` does.
pub fn histogram(values: &[f64]) -> HistogramProto {
    let limits = default_buckets();
    let mut counts = vec![0.0; limits.len()];
    let (mut min, mut max, mut sum, mut sq) = (f64::MAX, -f64::MAX, 0.0, 0.0);
    for &v in values {
        let b = limits.partition_point(|&l| l <= v).min(limits.len() - 1);
        counts[b] += 1.0;
        min = min.min(v);
        max = max.max(v);
        sum += v;
        sq += v * v;
    }
    let mut h = HistogramProto {
        min,
        max,
        num: values.len() as f64,
        sum,
        sum_squares: sq,
        ..Default::default()
    };
    let mut i = 0;
    while i < counts.len() {
        let mut end = limits[i];
        let mut count = counts[i];
        i += 1;
        if count <= 0.0 {
            while i < counts.len() && counts[i] <= 0.0 {
                end = limits[i];
                count = counts[i];
                i += 1;
            }
        }
        h.bucket_limit.push(end);
        h.bucket.push(count);
    }
    h
}

/// A histogram summary value.
pub fn histogram_value(tag: &str, values: &[f64]) -> SummaryValue {
    SummaryValue {
        tag: tag.to_string(),
        value: Some(SummaryValueKind::Histo(histogram(values))),
        ..Default::default()
    }
}

/// A PNG of an 8-bit image `height x width x channels` (1 gray, 3 RGB, 4 RGBA).
pub fn png(pixels: &[u8], height: usize, width: usize, channels: usize) -> Result<Vec<u8>> {
    let color = match channels {
        1 => png::ColorType::Grayscale,
        2 => png::ColorType::GrayscaleAlpha,
        3 => png::ColorType::Rgb,
        4 => png::ColorType::Rgba,
        c => {
            return Err(Error::invalid_argument(format!(
                "images have 1, 2, 3 or 4 channels, got {c}"
            )));
        }
    };
    if pixels.len() != height * width * channels {
        return Err(Error::invalid_argument(
            "image size does not match its pixels",
        ));
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width as u32, height as u32);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc
            .write_header()
            .map_err(|e| Error::internal(format!("PNG header: {e}")))?;
        w.write_image_data(pixels)
            .map_err(|e| Error::internal(format!("PNG data: {e}")))?;
    }
    Ok(out)
}

/// Float pixels to 8 bits as TF 1's `ImageSummary`: all non-negative values are scaled
/// so the largest is 255; with a negative value, 0.0 maps to 127 and the values are
/// scaled so the smallest is 0 or the largest 255.
pub fn float_pixels(values: &[f32]) -> Vec<u8> {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((0f32, 0f32), |(a, b), v| (a.min(v), b.max(v)));
    let (scale, offset) = if lo >= 0.0 {
        (if hi > 0.0 { 255.0 / hi } else { 0.0 }, 0.0)
    } else {
        let s = if -lo > hi {
            127.0 / -lo
        } else {
            127.0 / hi.max(f32::MIN_POSITIVE)
        };
        (s, 128.0)
    };
    values
        .iter()
        .map(|&v| {
            let v = if v.is_finite() { v } else { 0.0 };
            (v * scale + offset).round().clamp(0.0, 255.0) as u8
        })
        .collect()
}

/// Image summary values of a batch of 8-bit NHWC images (`pixels` of
/// `[n, h, w, c]`): at most `max_outputs`, tagged `<tag>/image` for one and
/// `<tag>/image/<i>` for several, as TF 1.
pub fn image_values(
    tag: &str,
    pixels: &[u8],
    shape: [usize; 4],
    max_outputs: usize,
) -> Result<Vec<SummaryValue>> {
    let [n, h, w, c] = shape;
    let count = n.min(max_outputs);
    let per = h * w * c;
    (0..count)
        .map(|i| {
            let name = if count == 1 {
                format!("{tag}/image")
            } else {
                format!("{tag}/image/{i}")
            };
            let encoded = png(&pixels[i * per..(i + 1) * per], h, w, c)?;
            Ok(SummaryValue {
                tag: name,
                value: Some(SummaryValueKind::Image(Image {
                    height: h as i32,
                    width: w as i32,
                    colorspace: c as i32,
                    encoded_image_string: encoded,
                })),
                ..Default::default()
            })
        })
        .collect()
}

/// A text summary value: a string scalar tensor with the `text` plugin's metadata.
pub fn text_value(tag: &str, text: &str) -> SummaryValue {
    SummaryValue {
        tag: tag.to_string(),
        metadata: Some(SummaryMetadata {
            plugin_data: Some(PluginData {
                plugin_name: "text".into(),
                content: Vec::new(),
            }),
            ..Default::default()
        }),
        value: Some(SummaryValueKind::Tensor(TensorProto {
            dtype: crate::tensor::TfDType::String.code(),
            tensor_shape: Some(TensorShapeProto::default()),
            string_val: vec![text.as_bytes().to_vec()],
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// The summary values of `merged` from the fetched `values` (one per spec that reads a
/// tensor, in order).
pub fn summary_values(merged: &MergedSummary, values: &[HostTensor]) -> Result<Vec<SummaryValue>> {
    let mut out = Vec::new();
    let mut it = values.iter();
    for spec in &merged.specs {
        let mut next = || {
            it.next().ok_or_else(|| {
                Error::invalid_argument(format!("no value fetched for summary '{}'", spec.tag))
            })
        };
        match &spec.kind {
            SummaryKind::Text(t) => out.push(text_value(&spec.tag, t)),
            SummaryKind::Scalar => out.push(scalar(&spec.tag, next()?.scalar_value()? as f32)),
            SummaryKind::Histogram => out.push(histogram_value(&spec.tag, &next()?.to_f64())),
            SummaryKind::Image { max_outputs } => {
                let v = next()?;
                let sh = v.shape();
                if sh.len() != 4 {
                    return Err(Error::invalid_argument(format!(
                        "image summary '{}' of shape {sh:?}",
                        spec.tag
                    )));
                }
                let pixels = match v.dtype() {
                    DType::F32 => float_pixels(&v.as_f32()?),
                    _ => v
                        .to_f64()
                        .iter()
                        .map(|p| p.clamp(0.0, 255.0) as u8)
                        .collect(),
                };
                let shape = [sh[0], sh[1], sh[2], sh[3]];
                out.extend(image_values(&spec.tag, &pixels, shape, *max_outputs)?);
            }
        }
    }
    Ok(out)
}

/// An event of `what` at `step`, now.
pub fn event(step: i64, what: What) -> Event {
    Event {
        wall_time: wall_time(),
        step,
        what: Some(what),
        source_metadata: None,
    }
}

/// A session log event (START 1, STOP 2, CHECKPOINT 3).
pub fn session_log(step: i64, status: i32, checkpoint_path: &str) -> Event {
    event(
        step,
        What::SessionLog(SessionLog {
            status,
            checkpoint_path: checkpoint_path.to_string(),
            msg: String::new(),
        }),
    )
}

/// TF's `RunMetadata` proto of a traced run: one `NodeExecStats` per kernel on the
/// device `/device:GPU:0`, times in microseconds and nanoseconds from the run's first
/// kernel, the kernel's entry point as its timeline label.
pub fn run_metadata_proto(meta: &wgtrain_engine::RunMetadata) -> RunMetadataProto {
    let node_stats = meta
        .kernels
        .iter()
        .map(|k| {
            let start = k.start_ns.round() as i64;
            let dur = k.duration_ns.round() as i64;
            NodeExecStats {
                node_name: k.node.clone(),
                all_start_micros: start / 1000,
                op_start_rel_micros: 0,
                op_end_rel_micros: dur / 1000,
                all_end_rel_micros: dur / 1000,
                timeline_label: format!("{} = {}", k.node, k.kernel),
                all_start_nanos: start,
                op_start_rel_nanos: 0,
                op_end_rel_nanos: dur,
                all_end_rel_nanos: dur,
            }
        })
        .collect();
    RunMetadataProto {
        step_stats: Some(StepStats {
            dev_stats: vec![DeviceStepStats {
                device: "/device:GPU:0".into(),
                node_stats,
            }],
        }),
    }
}

/// A tagged run metadata event (TF's `FileWriter.add_run_metadata`): TensorBoard's
/// graph plugin shows it as the session run `tag`.
pub fn run_metadata(step: i64, tag: &str, meta: &wgtrain_engine::RunMetadata) -> Event {
    event(
        step,
        What::TaggedRunMetadata(TaggedRunMetadata {
            tag: tag.to_string(),
            run_metadata: run_metadata_proto(meta).encode_to_vec(),
        }),
    )
}

// ---------------------------------------------------------------------------------
// Writing.

/// Options of an [`EventWriter`].
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// Flush at most this often (TF's default 120 s); every `flush` and `close` flush.
    pub flush_secs: f64,
    /// Events queued before `add` blocks (TF's `max_queue`, 10).
    pub max_queue: usize,
    /// Appended to the file name.
    pub filename_suffix: String,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            flush_secs: 120.0,
            max_queue: 10,
            filename_suffix: String::new(),
        }
    }
}

enum Msg {
    Event(Box<Event>),
    /// Summaries whose values are still on their way from the device.
    Pending(i64, MergedSummary, Snapshot),
}

/// Frames events into the file (the writer's background worker).
struct WriteEvents {
    out: std::io::BufWriter<File>,
    path: PathBuf,
    /// Tags whose metadata was written.
    seen: HashSet<String>,
}

impl WriteEvents {
    fn write(&mut self, mut ev: Event) -> Result<()> {
        if let Some(What::Summary(s)) = &mut ev.what {
            for v in &mut s.value {
                if v.metadata.is_some() && !self.seen.insert(v.tag.clone()) {
                    v.metadata = None;
                }
            }
        }
        self.out
            .write_all(&frame(&ev.encode_to_vec()))
            .map_err(|e| Error::io(self.path.display(), &e))
    }
}

impl wgtrain_engine::Task for WriteEvents {
    type Job = Msg;

    fn run(&mut self, job: Msg) -> Result<()> {
        match job {
            Msg::Event(ev) => self.write(*ev),
            Msg::Pending(step, merged, values) => {
                let vals = values.wait().and_then(|v| summary_values(&merged, &v))?;
                self.write(event(step, What::Summary(Summary { value: vals })))
            }
        }
    }

    fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .map_err(|e| Error::io(self.path.display(), &e))
    }
}

/// An asynchronous event file writer (TF's `EventFileWriter`): `add` queues an event;
/// a thread frames and writes it, flushing the first event at once and then at most
/// every `flush_secs`. An I/O error comes back from the next call; after `close`,
/// `add` is FailedPrecondition. Summary metadata is written only the first time a tag
/// appears in the file, as TF does.
pub struct EventWriter {
    worker: Worker<Msg>,
    path: PathBuf,
    dir: PathBuf,
}

/// Writers this process opened (the counter in event file names).
static OPENED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Creates a file of a name no file in `dir` has: the process id and a counter in it,
/// and the counter moved on past names already taken (a pid reused after a restart).
fn new_event_file(dir: &Path, secs: u64, suffix: &str) -> Result<(PathBuf, File)> {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let pid = std::process::id();
    loop {
        let n = OPENED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = dir.join(format!(
            "events.out.tfevents.{secs:010}.{host}.{pid}.{n}{suffix}"
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1 << 20 => {}
            Err(e) => return Err(Error::io(path.display(), &e)),
        }
    }
}

impl EventWriter {
    /// A writer of a new event file in `dir` (created if missing).
    pub fn new(dir: impl AsRef<Path>, opts: WriterOptions) -> Result<EventWriter> {
        let dir = dir.as_ref().to_path_buf();
        if !opts.flush_secs.is_finite() || !(0.0..=1e12).contains(&opts.flush_secs) {
            return Err(Error::invalid_argument(format!(
                "flush_secs must be a finite number of seconds, at least 0 (got {})",
                opts.flush_secs
            )));
        }
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), &e))?;
        let secs = wall_time() as u64;
        let (path, mut file) = new_event_file(&dir, secs, &opts.filename_suffix)?;
        let first = Event {
            wall_time: secs as f64,
            step: 0,
            what: Some(What::FileVersion(FILE_VERSION.into())),
            source_metadata: Some(crate::proto::SourceMetadata {
                writer: "wgtrain".into(),
            }),
        };
        let io = |e: std::io::Error, p: &Path| Error::io(p.display(), &e);
        file.write_all(&frame(&first.encode_to_vec()))
            .and_then(|_| file.flush())
            .map_err(|e| io(e, &path))?;
        let worker = Worker::spawn(
            "events",
            WorkerOptions {
                capacity: opts.max_queue.max(1),
                flush_every: Some(Duration::from_secs_f64(opts.flush_secs)),
                low_priority: true,
            },
            WriteEvents {
                out: std::io::BufWriter::new(file),
                path: path.clone(),
                seen: HashSet::new(),
            },
        )?;
        Ok(EventWriter { worker, path, dir })
    }

    /// The file being written.
    pub fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether events are still taken (not closed).
    pub fn is_open(&self) -> bool {
        self.worker.is_open()
    }

    /// The writer's worker, for a coordinator to stop and wait for at close.
    pub fn background(&self) -> Arc<dyn wgtrain_engine::Background> {
        self.worker.background()
    }

    fn closed(&self, e: Error) -> Error {
        if e.code == Code::FailedPrecondition {
            Error::new(
                Code::FailedPrecondition,
                format!("the event writer of {} is closed", self.path.display()),
            )
        } else {
            e
        }
    }

    /// Queues an event (blocks while `max_queue` are waiting).
    pub fn add(&self, event: Event) -> Result<()> {
        self.worker
            .submit(Msg::Event(Box::new(event)))
            .map_err(|e| self.closed(e))
    }

    /// Queues a summary at `step`.
    pub fn add_summary(&self, step: i64, values: Vec<SummaryValue>) -> Result<()> {
        self.add(event(step, What::Summary(Summary { value: values })))
    }

    /// Queues the summaries of `merged` at `step` whose values arrive on `values` (from
    /// [`Session::run_async`](wgtrain_engine::Executor::run_async) of
    /// `merged.fetches()`): the writer thread waits for them and builds the
    /// histograms and PNGs, so the training thread never does.
    pub fn add_pending(&self, step: i64, merged: MergedSummary, values: Snapshot) -> Result<()> {
        self.worker
            .submit(Msg::Pending(step, merged, values))
            .map_err(|e| self.closed(e))
    }

    /// Writes everything queued to the file and flushes it.
    pub fn flush(&self) -> Result<()> {
        self.worker.flush(None).map_err(|e| self.closed(e))
    }

    /// Flushes, stops the thread and closes the file; later `add`s are errors.
    pub fn close(&self) -> Result<()> {
        self.close_within(None)
    }

    /// [`close`](Self::close), waiting at most `timeout` (then DeadlineExceeded and
    /// the thread is left to finish).
    pub fn close_within(&self, timeout: Option<Duration>) -> Result<()> {
        self.worker.close(timeout)
    }
}

impl Drop for EventWriter {
    /// Closes a writer still open (waiting for its queue); one closed before (perhaps
    /// past a deadline) is left to its thread.
    fn drop(&mut self) {
        if self.worker.is_open()
            && let Err(e) = self.close()
        {
            tracing::error!(error = %e, "event writer failed (reported at drop)");
        }
    }
}

/// The event writers of one owner, one per log directory (TF's `FileWriterCache`, but
/// owned: a monitored session's coordinator holds them and closes them with it, so a
/// session leaves no writer open behind it). Clones share the writers.
#[derive(Clone, Default)]
pub struct EventWriters {
    open: Arc<Mutex<HashMap<PathBuf, Arc<EventWriter>>>>,
}

impl std::fmt::Debug for EventWriters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dirs: Vec<PathBuf> = self
            .open
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("EventWriters").field("dirs", &dirs).finish()
    }
}

impl EventWriters {
    /// No writers yet.
    pub fn new() -> EventWriters {
        EventWriters::default()
    }

    /// The writer of `dir`, opened (a new event file) when there is none or it was
    /// closed.
    pub fn get(&self, dir: impl AsRef<Path>) -> Result<Arc<EventWriter>> {
        let dir = dir.as_ref();
        let key = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let mut open = self
            .open
            .lock()
            .map_err(|_| Error::internal("event writers lock poisoned"))?;
        if let Some(w) = open.get(&key)
            && w.is_open()
        {
            return Ok(Arc::clone(w));
        }
        let w = Arc::new(EventWriter::new(&key, WriterOptions::default())?);
        open.insert(key, Arc::clone(&w));
        Ok(w)
    }

    /// The workers of the open writers.
    pub fn backgrounds(&self) -> Vec<Arc<dyn wgtrain_engine::Background>> {
        self.open
            .lock()
            .map(|m| m.values().map(|w| w.background()).collect())
            .unwrap_or_default()
    }

    /// Flushes and closes every writer, all within `deadline` when given (a writer
    /// still busy then is DeadlineExceeded); returns the first error. Later `get`s
    /// open new files.
    pub fn close_all(&self, deadline: Option<Instant>) -> Result<()> {
        let writers: Vec<Arc<EventWriter>> = self
            .open
            .lock()
            .map(|mut m| m.drain().map(|(_, w)| w).collect())
            .unwrap_or_default();
        let mut first = Ok(());
        for w in writers {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if let Err(e) = w.close_within(left)
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
    }
}
