//! What a run reports about itself: [`RunStats`] and a traced run's [`RunMetadata`].

/// Counters of device work, for benchmarks and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Kernel dispatches recorded by the last run.
    pub dispatches: usize,
    /// Queue submissions made by the last run.
    pub submissions: usize,
    /// Bytes read back to the host by the last run.
    pub readback_bytes: u64,
    /// Distinct plans built so far.
    pub plans: usize,
    /// Runs so far.
    pub runs: u64,
    /// Bytes of gradients the last run averaged across processes (0 without a
    /// [`GradientReducer`](crate::GradientReducer)).
    pub all_reduce_bytes: u64,
    /// Nanoseconds the last run spent averaging once the gradients were on the host:
    /// the reducer's all-reduce and writing them back (the wait for the backward pass
    /// before it is device time the step spends anyway).
    pub all_reduce_ns: u64,
}

/// The device time of one kernel of a traced run (see [`Session::run_traced`](crate::Session::run_traced)).
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    /// The graph node the kernel was recorded at (a fused kernel computes more).
    pub node: String,
    /// The kernel's entry point in the WGSL sources.
    pub kernel: &'static str,
    /// Start, in nanoseconds from the start of the run's first kernel.
    pub start_ns: f64,
    /// Device time of the kernel in nanoseconds.
    pub duration_ns: f64,
}

/// What a traced run recorded, as TF's `RunMetadata` with `FULL_TRACE`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunMetadata {
    /// Every kernel of the run in order, timed where the adapter has timestamp queries.
    pub kernels: Vec<KernelTime>,
    /// Whether the times are measured (false: the adapter cannot time kernels, and
    /// every time is 0).
    pub timed: bool,
}
