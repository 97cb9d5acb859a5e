//! Adapter selection and the shared GPU context (device, queue, pipeline cache).

use super::shaders::{Shader, source};
use crate::error::{Code, Error, Result};
use crate::executor::{Backend, PowerPreference, SessionConfig};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

fn backends(config: &SessionConfig) -> wgpu::Backends {
    match config.backend {
        Backend::Auto => wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all()),
        Backend::Vulkan => wgpu::Backends::VULKAN,
        Backend::Metal => wgpu::Backends::METAL,
        Backend::Dx12 => wgpu::Backends::DX12,
        Backend::Gl => wgpu::Backends::GL,
        Backend::Reference => wgpu::Backends::empty(),
    }
}

fn name_filter(config: &SessionConfig) -> Option<String> {
    config
        .adapter_name
        .clone()
        .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
        .filter(|s| !s.is_empty())
        .map(|s| s.to_lowercase())
}

fn low_power(config: &SessionConfig) -> bool {
    match std::env::var("WGPU_POWER_PREF").ok().as_deref() {
        Some("low") => true,
        Some("high") => false,
        _ => config.power_preference == PowerPreference::LowPower,
    }
}

/// What an adapter is, as reported by wgpu.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    /// The adapter's name (`llvmpipe (LLVM 15.0.6, 256 bits)`).
    pub name: String,
    /// The backend (`Vulkan`).
    pub backend: String,
    /// Discrete, integrated, virtual, CPU or other.
    pub device_type: String,
    /// Driver name and version.
    pub driver: String,
    /// Largest storage-buffer binding in bytes.
    pub max_storage_buffer_binding_size: u64,
    /// Workgroups per dispatch dimension.
    pub max_compute_workgroups_per_dimension: u32,
    /// Storage buffers one kernel may bind.
    pub max_storage_buffers_per_shader_stage: u32,
}

const NO_ADAPTER_HELP: &str = "no GPU adapter found. On Linux without a GPU install Mesa's \
software Vulkan driver (lavapipe): `apt-get install mesa-vulkan-drivers libvulkan1`; \
check the backend (WGPU_BACKEND) and adapter name (WGPU_ADAPTER_NAME) filters";

fn rank(t: wgpu::DeviceType, low_power: bool) -> u32 {
    use wgpu::DeviceType::*;
    match (t, low_power) {
        (DiscreteGpu, false) | (IntegratedGpu, true) => 0,
        (IntegratedGpu, false) | (DiscreteGpu, true) => 1,
        (VirtualGpu, _) => 2,
        (Cpu, _) => 3,
        (Other, _) => 4,
    }
}

/// Lists the adapters wgpu sees for `config`'s backend.
pub fn list_adapters(config: &SessionConfig) -> Vec<AdapterSummary> {
    quiet_probe(|| {
        let instance = instance(config);
        pollster::block_on(instance.enumerate_adapters(backends(config)))
            .iter()
            .map(summary)
            .collect()
    })
}

/// What Mesa's device-select Vulkan layer (and EGL) print through libwayland when
/// probing on a machine without a desktop session.
const PROBE_NOISE: &str = "XDG_RUNTIME_DIR is invalid or not set in the environment";

/// Runs `f` (an adapter probe) with the process's stderr passed through a filter that
/// drops [`PROBE_NOISE`] lines, where there is no `XDG_RUNTIME_DIR` to make libwayland
/// print them; everything else written meanwhile comes out after, unchanged.
#[cfg(unix)]
fn quiet_probe<T>(f: impl FnOnce() -> T) -> T {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    if std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return f();
    }
    static ONE: Mutex<()> = Mutex::new(());
    let _one = ONE.lock();
    let Ok(saved) = rustix::io::dup(std::io::stderr().as_fd()) else {
        return f();
    };
    let Ok((read, write)) = rustix::pipe::pipe() else {
        return f();
    };
    let Ok(drain) = std::thread::Builder::new()
        .name("wgtrain-probe-stderr".into())
        .spawn(move || {
            let mut out = Vec::new();
            let _ = std::fs::File::from(read).read_to_end(&mut out);
            out
        })
    else {
        return f();
    };
    let redirected = rustix::stdio::dup2_stderr(&write).is_ok();
    drop(write);
    let out = f();
    if redirected {
        let _ = rustix::stdio::dup2_stderr(&saved);
    }
    let written = drain.join().unwrap_or_default();
    let kept: Vec<&[u8]> = written
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| !String::from_utf8_lossy(l).contains(PROBE_NOISE))
        .collect();
    let mut err = std::io::stderr().lock();
    for l in kept {
        let _ = err.write_all(l);
    }
    out
}

#[cfg(not(unix))]
fn quiet_probe<T>(f: impl FnOnce() -> T) -> T {
    f()
}

fn instance(config: &SessionConfig) -> wgpu::Instance {
    instance_for(backends(config))
}

fn instance_for(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

fn summary(a: &wgpu::Adapter) -> AdapterSummary {
    let info = a.get_info();
    let limits = a.limits();
    AdapterSummary {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
        max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
        max_storage_buffers_per_shader_stage: limits.max_storage_buffers_per_shader_stage,
    }
}

/// A pipeline: family, entry point and override constants.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PipelineKey {
    pub shader: Shader,
    pub entry: &'static str,
    pub overrides: Vec<(&'static str, u32)>,
}

/// A device shared by every session with the same config: the device, its queue, the
/// adapter summary, and one cache of shader modules and pipelines.
pub(crate) struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterSummary,
    pub limits: wgpu::Limits,
    /// Whether kernels can be timed (timestamp queries).
    pub timestamps: bool,
    pub lost: Arc<AtomicBool>,
    /// Errors that escaped every error scope (wgpu would otherwise panic).
    pub uncaptured: Arc<Mutex<Vec<String>>>,
    modules: Mutex<HashMap<Shader, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>,
}

fn registry() -> &'static Mutex<HashMap<SessionConfig, Arc<Gpu>>> {
    static R: OnceLock<Mutex<HashMap<SessionConfig, Arc<Gpu>>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(HashMap::new()))
}

impl Gpu {
    /// The shared context for `config`, created on first use and re-created after the
    /// device was lost.
    pub fn shared(config: &SessionConfig) -> Result<Arc<Gpu>> {
        // The wait bound is the session's, not the device's.
        let config = &SessionConfig {
            operation_timeout_in_ms: 0,
            ..config.clone()
        };
        let mut reg = registry()
            .lock()
            .map_err(|_| Error::internal("GPU registry lock poisoned"))?;
        if let Some(g) = reg.get(config)
            && !g.lost.load(Ordering::SeqCst)
        {
            return Ok(Arc::clone(g));
        }
        let g = Arc::new(Gpu::create(config)?);
        reg.insert(config.clone(), Arc::clone(&g));
        Ok(g)
    }

    fn create(config: &SessionConfig) -> Result<Gpu> {
        let backends = backends(config);
        // With every backend allowed, try the primary APIs first: probing GL (EGL) is
        // slow and noisy on headless machines, and only a fallback.
        let auto = config.backend == Backend::Auto && wgpu::Backends::from_env().is_none();
        let first = if auto {
            wgpu::Backends::PRIMARY
        } else {
            backends
        };
        let mut adapters = quiet_probe(|| {
            let instance = instance_for(first);
            let mut adapters = pollster::block_on(instance.enumerate_adapters(first));
            if adapters.is_empty() && auto {
                let gl = instance_for(wgpu::Backends::GL);
                adapters = pollster::block_on(gl.enumerate_adapters(wgpu::Backends::GL));
            }
            adapters
        });
        if let Some(filter) = name_filter(config) {
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&filter));
        }
        let low = low_power(config);
        adapters.sort_by_key(|a| rank(a.get_info().device_type, low));
        let skip = match (config.adapter_index, adapters.len()) {
            (Some(i), n) if n > 0 => i % n,
            _ => 0,
        };
        let adapter = adapters
            .into_iter()
            .nth(skip)
            .ok_or_else(|| Error::new(Code::NotFound, NO_ADAPTER_HELP))?;
        let limits = adapter.limits();
        // Timestamps, where the adapter has them, time kernels in traced runs.
        let features = adapter.features() & wgpu::Features::TIMESTAMP_QUERY;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("wgtrain"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| {
            Error::unavailable(format!(
                "requesting a device from '{}': {e}",
                adapter.get_info().name
            ))
        })?;
        let lost = Arc::new(AtomicBool::new(false));
        let lost2 = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, msg| {
            tracing::error!(?reason, %msg, "wgpu device lost");
            lost2.store(true, Ordering::SeqCst);
        });
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&uncaptured);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            tracing::error!(error = %e, "uncaptured wgpu error");
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        let adapter_summary = summary(&adapter);
        tracing::info!(adapter = %adapter_summary.name, backend = %adapter_summary.backend, "wgtrain device ready");
        Ok(Gpu {
            device,
            queue,
            adapter: adapter_summary,
            limits,
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            lost,
            uncaptured,
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
        })
    }

    /// The compiled pipeline for `key`, from the cache.
    pub fn pipeline(&self, key: &PipelineKey) -> Result<wgpu::ComputePipeline> {
        let mut pipes = self
            .pipelines
            .lock()
            .map_err(|_| Error::internal("pipeline cache lock poisoned"))?;
        if let Some(p) = pipes.get(key) {
            return Ok(p.clone());
        }
        let module = {
            let mut mods = self
                .modules
                .lock()
                .map_err(|_| Error::internal("module cache lock poisoned"))?;
            mods.entry(key.shader)
                .or_insert_with(|| {
                    self.device
                        .create_shader_module(wgpu::ShaderModuleDescriptor {
                            label: Some(&format!("{:?}", key.shader)),
                            source: wgpu::ShaderSource::Wgsl(source(key.shader).into()),
                        })
                })
                .clone()
        };
        let constants: Vec<(&str, f64)> = key
            .overrides
            .iter()
            .map(|&(n, v)| (n, f64::from(v)))
            .collect();
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(key.entry),
                layout: None,
                module: &module,
                entry_point: Some(key.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::internal(format!(
                "compiling kernel {:?}::{} {:?}: {e}",
                key.shader, key.entry, key.overrides
            )));
        }
        pipes.insert(key.clone(), pipeline.clone());
        Ok(pipeline)
    }

    /// An error if the device was lost or an error escaped the error scopes.
    pub fn check_health(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(Error::aborted(format!(
                "the GPU device '{}' was lost; re-create the session",
                self.adapter.name
            )));
        }
        if let Ok(mut v) = self.uncaptured.lock()
            && !v.is_empty()
        {
            let msg = v.join("; ");
            v.clear();
            return Err(Error::internal(format!("wgpu: {msg}")));
        }
        Ok(())
    }
}
