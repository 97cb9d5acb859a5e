//! [`SessionConfig`]: which backend and adapter a session runs on.

/// Which graphics API wgpu should use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Every backend the platform has, or the `WGPU_BACKEND` environment variable.
    #[default]
    Auto,
    /// Vulkan (Linux, Windows, Android; Mesa's lavapipe without a GPU).
    Vulkan,
    /// Metal (macOS, iOS).
    Metal,
    /// Direct3D 12 (Windows).
    Dx12,
    /// OpenGL / GLES.
    Gl,
    /// No device: [`executor::create`](crate::executor::create) makes the
    /// [`Reference`](crate::Reference) interpreter, which runs the graph on the host in
    /// `f64` (host-side logic and its tests; debugging a model).
    Reference,
}

/// Which adapter to prefer when several are present.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PowerPreference {
    /// Discrete GPUs first, then integrated, virtual, software (or `WGPU_POWER_PREF`).
    #[default]
    HighPerformance,
    /// Integrated GPUs first.
    LowPower,
}

/// How a session finds its device: the backend and adapter of a wgpu
/// [`Session`](crate::Session), or [`Backend::Reference`] for the host interpreter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SessionConfig {
    /// The graphics API.
    pub backend: Backend,
    /// A case-insensitive substring of the adapter name (or `WGPU_ADAPTER_NAME`).
    pub adapter_name: Option<String>,
    /// Preference among adapters.
    pub power_preference: PowerPreference,
    /// Which of the adapters the filters keep, in order of preference, counting from 0
    /// and wrapping around (`index % count`): a distributed rank picks its node-local
    /// rank, so each rank of a node with as many adapters opens its own.
    pub adapter_index: Option<usize>,
    /// How long a wait for the device may take, in milliseconds, before it is
    /// DeadlineExceeded (TF's `operation_timeout_in_ms`); 0 waits for as long as it takes.
    pub operation_timeout_in_ms: u64,
}

impl SessionConfig {
    /// Uses `backend`.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Picks the adapter whose name contains `name`.
    pub fn adapter_name(mut self, name: impl Into<String>) -> Self {
        self.adapter_name = Some(name.into());
        self
    }

    /// Sets the power preference.
    pub fn power_preference(mut self, p: PowerPreference) -> Self {
        self.power_preference = p;
        self
    }

    /// Picks the adapter at `index` (modulo their number) among those the filters keep.
    pub fn adapter_index(mut self, index: usize) -> Self {
        self.adapter_index = Some(index);
        self
    }

    /// Fails a wait for the device after `ms` milliseconds (0: never).
    pub fn operation_timeout_in_ms(mut self, ms: u64) -> Self {
        self.operation_timeout_in_ms = ms;
        self
    }

    /// The device wait bound, if there is one.
    pub fn operation_timeout(&self) -> Option<std::time::Duration> {
        (self.operation_timeout_in_ms > 0)
            .then(|| std::time::Duration::from_millis(self.operation_timeout_in_ms))
    }
}
