//! `wgtrain`: the adapters wgpu sees, what a checkpoint holds (TF's or ours), what an
//! event directory logged.
//!
//! Exit codes: 0 ok; 1 an error, with one line on stderr; 2 a usage error.

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wgtrain::checkpoint::proto::{SummaryValueKind, What};
use wgtrain::checkpoint::tensor::{Data, TfDType};
use wgtrain::checkpoint::{BundleReader, checkpoints_newest_first, events};
use wgtrain::engine::runtime::list_adapters;
use wgtrain::engine::{Backend, SessionConfig};
use wgtrain::{Code, Error, Result};

/// wgtrain's command-line tool.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The adapters wgpu sees on every backend, with the limits that matter.
    Devices,
    /// Inspect a checkpoint (as TF's inspect_checkpoint).
    Ckpt {
        #[command(subcommand)]
        command: CkptCommand,
    },
    /// The scalars of an event directory: tags, steps and last values.
    Events {
        /// A directory of event files (subdirectories included).
        dir: PathBuf,
        /// Every scalar point as CSV (tag,step,wall_time,value).
        #[arg(long)]
        csv: bool,
    },
}

#[derive(Subcommand, Debug)]
enum CkptCommand {
    /// Every variable of a checkpoint: name, dtype, shape.
    List {
        /// A checkpoint prefix (`model.ckpt-42`) or a directory (its latest checkpoint).
        path: PathBuf,
        /// Read every tensor and check its CRC; damaged ones are DataLoss (exit 1).
        #[arg(long)]
        verify: bool,
    },
    /// One variable: dtype, shape, statistics and values.
    Show {
        /// A checkpoint prefix or a directory.
        path: PathBuf,
        /// The variable's name.
        name: String,
        /// Print every value instead of the first 10.
        #[arg(long)]
        all: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = String::new();
    let r = match cli.command {
        Command::Devices => devices(&mut out),
        Command::Ckpt {
            command: CkptCommand::List { path, verify },
        } => ckpt_list(&path, verify, &mut out),
        Command::Ckpt {
            command: CkptCommand::Show { path, name, all },
        } => ckpt_show(&path, &name, all, &mut out),
        Command::Events { dir, csv } => events_of(&dir, csv, &mut out),
    };
    print!("{out}");
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn devices(out: &mut String) -> Result<()> {
    use std::fmt::Write;
    let mut n = 0;
    // WGPU_BACKEND narrows the listing as it narrows what a session may open.
    let from_env = std::env::var("WGPU_BACKEND").ok().filter(|v| !v.is_empty());
    let backends: &[Backend] = match from_env {
        Some(_) => &[Backend::Auto],
        None => &[Backend::Vulkan, Backend::Metal, Backend::Dx12, Backend::Gl],
    };
    for &backend in backends {
        for a in list_adapters(&SessionConfig::default().backend(backend)) {
            n += 1;
            let _ = writeln!(out, "{}", a.name);
            let _ = writeln!(out, "  backend: {}, type: {}", a.backend, a.device_type);
            let _ = writeln!(out, "  driver: {}", a.driver);
            let _ = writeln!(
                out,
                "  max storage buffer binding: {} MiB, storage buffers per kernel: {}, workgroups per dimension: {}",
                a.max_storage_buffer_binding_size >> 20,
                a.max_storage_buffers_per_shader_stage,
                a.max_compute_workgroups_per_dimension
            );
        }
    }
    if n == 0 {
        let with = from_env.map_or(String::new(), |v| format!(" with WGPU_BACKEND={v}"));
        return Err(Error::new(
            Code::NotFound,
            format!(
                "no adapter found{with}: on Linux without a GPU, install Mesa's software Vulkan driver (apt-get install mesa-vulkan-drivers libvulkan1)"
            ),
        ));
    }
    Ok(())
}

/// The checkpoint at `path`: a prefix, or a directory's latest checkpoint (the one its
/// state file names, else the newest found).
fn open(path: &Path) -> Result<BundleReader> {
    if path.is_dir() {
        let prefix = checkpoints_newest_first(path)
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::new(
                    Code::NotFound,
                    format!("no checkpoint in {}", path.display()),
                )
            })?;
        return BundleReader::open(prefix);
    }
    BundleReader::open(path)
}

/// Which checkpoint of `dir` a restore would use: the newest whose every tensor
/// verifies; one line per checkpoint it would skip.
fn restore_pick(dir: &Path, out: &mut String) {
    use std::fmt::Write;
    for prefix in checkpoints_newest_first(dir) {
        let bad = match BundleReader::open(&prefix) {
            Err(e) => Some(e.to_string()),
            Ok(r) => r
                .verify()
                .into_iter()
                .find_map(|(n, v)| v.err().map(|e| format!("{n}: {e}"))),
        };
        match bad {
            None => {
                let _ = writeln!(out, "a restore would use {}", prefix.display());
                return;
            }
            Some(why) => {
                let _ = writeln!(out, "a restore would skip {}: {why}", prefix.display());
            }
        }
    }
    let _ = writeln!(
        out,
        "a restore would find no checkpoint that verifies in {}",
        dir.display()
    );
}

fn shape_of(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join(", "))
}

fn ckpt_list(path: &Path, verify: bool, out: &mut String) -> Result<()> {
    use std::fmt::Write;
    let r = open(path)?;
    let _ = writeln!(out, "checkpoint {}", r.prefix().display());
    let list = r.list();
    let width = list.iter().map(|(n, _, _)| n.len()).max().unwrap_or(0);
    for (name, dtype, shape) in &list {
        let _ = writeln!(
            out,
            "{name:<width$}  {:<8}  {}",
            dtype.name(),
            shape_of(shape)
        );
    }
    if !verify {
        return Ok(());
    }
    if path.is_dir() {
        restore_pick(path, out);
    }
    let checked = r.verify();
    let bad: Vec<&(String, Result<()>)> = checked.iter().filter(|(_, r)| r.is_err()).collect();
    for (name, e) in &bad {
        if let Err(e) = e {
            let _ = writeln!(out, "DataLoss {name}: {}", e.message);
        }
    }
    if bad.is_empty() {
        let _ = writeln!(
            out,
            "verified: {} tensors, every CRC matches",
            checked.len()
        );
        Ok(())
    } else {
        Err(Error::new(
            Code::DataLoss,
            format!(
                "{} of {} tensors in {} are damaged",
                bad.len(),
                checked.len(),
                r.prefix().display()
            ),
        ))
    }
}

fn ckpt_show(path: &Path, name: &str, all: bool, out: &mut String) -> Result<()> {
    use std::fmt::Write;
    let r = open(path)?;
    if !r.contains(name) {
        return Err(Error::new(
            Code::NotFound,
            format!("no variable '{name}' in {}", r.prefix().display()),
        ));
    }
    let t = r.get(name)?;
    let _ = writeln!(
        out,
        "{name}: {} {} ({} values)",
        t.dtype,
        shape_of(&t.shape),
        t.len()
    );
    let shown = if all { t.len() } else { t.len().min(10) };
    match &t.data {
        Data::Strings(s) => {
            for v in s.iter().take(shown) {
                let _ = writeln!(out, "  {:?}", String::from_utf8_lossy(v));
            }
        }
        Data::Bytes(_) => {
            let v = t.to_f64()?;
            // Values of 32 bits or fewer print as the f32 they are.
            let narrow = matches!(t.dtype, TfDType::Float | TfDType::Half | TfDType::BFloat16);
            let fmt = |x: f64| {
                if narrow {
                    Scalar::F32(x as f32).to_string()
                } else {
                    Scalar::F64(x).to_string()
                }
            };
            if !v.is_empty() {
                let min = v.iter().copied().fold(f64::INFINITY, f64::min);
                let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mean = v.iter().sum::<f64>() / v.len() as f64;
                let _ = writeln!(
                    out,
                    "  min {}  max {}  mean {}",
                    fmt(min),
                    fmt(max),
                    Scalar::F64(mean)
                );
            }
            let vals: Vec<String> = v.iter().take(shown).map(|&x| fmt(x)).collect();
            let more = if shown < v.len() { " ..." } else { "" };
            let _ = writeln!(out, "  [{}{more}]", vals.join(", "));
        }
    }
    Ok(())
}

/// Event files under `dir`, subdirectories included (a TensorBoard log directory).
fn event_files_under(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    found.extend(events::event_files(dir)?);
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir.display(), &e))?;
    let mut subdirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    subdirs.sort();
    for d in subdirs {
        event_files_under(&d, found)?;
    }
    Ok(())
}

fn events_of(dir: &Path, csv: bool, out: &mut String) -> Result<()> {
    use std::fmt::Write;
    if !dir.is_dir() {
        return Err(Error::new(
            Code::NotFound,
            format!("{} is not a directory", dir.display()),
        ));
    }
    let mut files = Vec::new();
    event_files_under(dir, &mut files)?;
    if files.is_empty() {
        return Err(Error::new(
            Code::NotFound,
            format!(
                "no event files (events.out.tfevents.*) in {}",
                dir.display()
            ),
        ));
    }
    // Each directory holding event files is a run, as TensorBoard shows them: (run) ->
    // (tag) -> points (step, wall time, value), in file order.
    type Points = std::collections::BTreeMap<String, Vec<(i64, f64, Scalar)>>;
    let mut runs: std::collections::BTreeMap<String, (usize, Points)> = Default::default();
    let mut damaged = Vec::new();
    for f in &files {
        let run = f
            .parent()
            .and_then(|p| p.strip_prefix(dir).ok())
            .map(|p| p.display().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| ".".to_string());
        let (count, tags) = runs.entry(run).or_default();
        *count += 1;
        let (records, err) = events::read_file(f)?;
        if let Some(e) = err {
            damaged.push(e);
        }
        for r in records {
            let Some(What::Summary(s)) = &r.event.what else {
                continue;
            };
            for v in &s.value {
                let value = match &v.value {
                    Some(SummaryValueKind::SimpleValue(x)) => Scalar::F32(*x),
                    Some(SummaryValueKind::Tensor(t)) if is_scalar(v) => match scalar_of(t) {
                        Some(x) => x,
                        None => continue,
                    },
                    _ => continue,
                };
                tags.entry(v.tag.clone()).or_default().push((
                    r.event.step,
                    r.event.wall_time,
                    value,
                ));
            }
        }
    }
    if csv {
        let _ = writeln!(out, "run,tag,step,wall_time,value");
        for (run, (_, tags)) in &runs {
            for (tag, points) in tags {
                for (step, wall, value) in points {
                    let _ = writeln!(
                        out,
                        "{},{},{step},{wall:.3},{value}",
                        csv_field(run),
                        csv_field(tag)
                    );
                }
            }
        }
    } else {
        let width = runs
            .values()
            .flat_map(|(_, t)| t.keys().map(String::len))
            .max()
            .unwrap_or(3)
            .max(3);
        for (i, (run, (count, tags))) in runs.iter().enumerate() {
            if i > 0 {
                let _ = writeln!(out);
            }
            let _ = writeln!(
                out,
                "run {run}: {count} event file(s) in {}",
                if run == "." {
                    dir.to_path_buf()
                } else {
                    dir.join(run)
                }
                .display()
            );
            let _ = writeln!(
                out,
                "{:<width$}  {:>6}  {:>10}  {:>10}  last value",
                "tag", "points", "first step", "last step"
            );
            for (tag, points) in tags {
                let first = points.iter().map(|p| p.0).min().unwrap_or(0);
                let last = points.iter().max_by_key(|p| p.0);
                if let Some((step, _, value)) = last {
                    let _ = writeln!(
                        out,
                        "{tag:<width$}  {:>6}  {first:>10}  {step:>10}  {value}",
                        points.len()
                    );
                }
            }
        }
    }
    match damaged.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Whether a tensor summary value is a scalar (the scalars plugin's).
fn is_scalar(v: &wgtrain::checkpoint::proto::SummaryValue) -> bool {
    v.metadata
        .as_ref()
        .and_then(|m| m.plugin_data.as_ref())
        .is_some_and(|p| p.plugin_name == "scalars")
}

/// A scalar summary value, printed as the type it was written as.
#[derive(Clone, Copy, Debug)]
enum Scalar {
    F32(f32),
    F64(f64),
}

/// The shortest digits that read back as the same value: plain in the usual range,
/// in exponent form beyond it (`3.4028235e38`, not 39 digits).
impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let wide = |a: f64| a != 0.0 && a.is_finite() && !(1e-5..1e16).contains(&a.abs());
        match self {
            Scalar::F32(x) if wide(f64::from(*x)) => write!(f, "{x:e}"),
            Scalar::F64(x) if wide(*x) => write!(f, "{x:e}"),
            Scalar::F32(x) => write!(f, "{x}"),
            Scalar::F64(x) => write!(f, "{x}"),
        }
    }
}

/// The value of a scalar tensor summary (TF 2 writes scalars as float or double
/// tensors, in the repeated field or the raw content).
fn scalar_of(t: &wgtrain::checkpoint::proto::TensorProto) -> Option<Scalar> {
    if let Some(x) = t.float_val.first() {
        return Some(Scalar::F32(*x));
    }
    if let Some(x) = t.double_val.first() {
        return Some(Scalar::F64(*x));
    }
    let c = &t.tensor_content;
    match (t.dtype, c.len()) {
        (1, 4) => Some(Scalar::F32(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
        (2, 8) => c[..8]
            .try_into()
            .ok()
            .map(|b| Scalar::F64(f64::from_le_bytes(b))),
        _ => None,
    }
}

/// A CSV field, quoted when it needs to be.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
