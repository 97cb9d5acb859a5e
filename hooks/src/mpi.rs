//! Distributed training on MPI (cargo feature `mpi`): the process's MPI runtime, the
//! gradient all-reduce, the chief's broadcast of its variables and the agreement after
//! every run. See [`crate::distributed`] for the contract.
//!
//! MPI is initialized by the first distributed session of a process and finalized when
//! the last handle on it ([`MpiRuntime`], held by every distributed session) is dropped.
//! A process that runs several distributed sessions one after another keeps a handle
//! from [`init`] alive across them (MPI cannot be initialized twice).

use crate::distributed::{self, Agreed, Replicas, StepState, World};
use crate::scaffold::{ChiefSessionCreator, Scaffold, SessionCreator, not_ready};
use mpi::collective::SystemOperation;
use mpi::request::StaticScope;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use wgtrain_engine::{
    Code, Error, Executor, GradientReducer, Graph, HostTensor, Result, SessionConfig, Tensor,
};

/// This process's MPI runtime: initialized once, finalized when the last handle drops
/// (or ending the job with `MPI_Abort` when a collective was left incomplete).
pub struct MpiRuntime {
    universe: Mutex<Option<mpi::environment::Universe>>,
    world: World,
    /// Why this rank left while the others may still train (then the job is ended
    /// instead of finalized).
    left: Mutex<Option<String>>,
    reductions: AtomicU64,
    scratch: Mutex<Vec<f32>>,
}

static RUNTIME: Mutex<Weak<MpiRuntime>> = Mutex::new(Weak::new());
/// Runtimes that left a collective pending: never finalized (that would wait forever);
/// the process exits without it and the launcher ends the job.
static ABANDONED: Mutex<Vec<Arc<MpiRuntime>>> = Mutex::new(Vec::new());

/// The node-local rank as Open MPI, MPICH/Hydra, MVAPICH and Slurm's `srun` set it.
const LOCAL_RANK_VARS: [&str; 5] = [
    "OMPI_COMM_WORLD_LOCAL_RANK",
    "MPI_LOCALRANKID",
    "MV2_COMM_WORLD_LOCAL_RANK",
    "PMI_LOCAL_RANK",
    "SLURM_LOCALID",
];
static PANIC_HOOK: AtomicBool = AtomicBool::new(false);

/// The process's MPI runtime, initialized on first use (`MPI_Init_thread`, serialized
/// calls). A process where something else initialized MPI uses it and leaves
/// finalizing to its owner. FailedPrecondition once MPI was finalized.
pub fn init() -> Result<Arc<MpiRuntime>> {
    let mut slot = RUNTIME
        .lock()
        .map_err(|_| Error::internal("MPI runtime lock poisoned"))?;
    if let Some(rt) = slot.upgrade() {
        return Ok(rt);
    }
    if mpi::environment::is_finalized() {
        return Err(Error::failed_precondition(
            "MPI was finalized when the last distributed session of this process ended; \
             hold a handle from wgtrain::hooks::mpi::init() to run several distributed sessions",
        ));
    }
    let universe = if mpi::environment::is_initialized() {
        None
    } else {
        let (u, _) = mpi::initialize_with_threading(mpi::Threading::Serialized)
            .ok_or_else(|| Error::unavailable("MPI_Init_thread failed"))?;
        Some(u)
    };
    let comm = SimpleCommunicator::world();
    let (rank, size) = (comm.rank() as usize, comm.size() as usize);
    // The launcher says which rank of its node this is; asking MPI instead is a
    // collective, which would wait for every rank to start.
    let local_rank = LOCAL_RANK_VARS
        .iter()
        .find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
        .unwrap_or_else(|| comm.split_shared(comm.rank()).rank() as usize);
    let world = World {
        rank,
        size,
        local_rank,
    };
    distributed::set_world(world);
    install_panic_hook(world);
    let rt = Arc::new(MpiRuntime {
        universe: Mutex::new(universe),
        world,
        left: Mutex::new(None),
        reductions: AtomicU64::new(0),
        scratch: Mutex::new(Vec::new()),
    });
    *slot = Arc::downgrade(&rt);
    Ok(rt)
}

/// A panic on one rank ends the whole job: unwinding into `MPI_Finalize` while a peer
/// waits in a collective would hang every rank forever.
fn install_panic_hook(world: World) {
    if PANIC_HOOK.swap(true, Ordering::SeqCst) {
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        if mpi::environment::is_initialized() && !mpi::environment::is_finalized() {
            eprintln!(
                "wgtrain: rank {} of {} panicked; ending the job (MPI_Abort)",
                world.rank, world.size
            );
            SimpleCommunicator::world().abort(101);
        }
    }));
}

impl MpiRuntime {
    /// Where this process stands.
    pub fn world(&self) -> World {
        self.world
    }

    fn comm(&self) -> SimpleCommunicator {
        SimpleCommunicator::world()
    }

    /// Ends the job from this rank: one line naming the rank and the cause, then
    /// `MPI_Abort` (every rank exits).
    pub fn abort(&self, cause: &str) -> ! {
        eprintln!(
            "wgtrain: rank {} of {} failed: {cause}; ending the job (MPI_Abort)",
            self.world.rank, self.world.size
        );
        self.comm().abort(1)
    }

    /// Waits for `req` at most `limit` from `start`, polling; past it the request is
    /// left pending for good (MPI cannot withdraw a collective) and the runtime is
    /// never finalized, and the error says what was awaited.
    fn wait_within<D: ?Sized>(
        self: &Arc<Self>,
        mut req: mpi::request::Request<'static, D, StaticScope>,
        start: Instant,
        limit: f64,
        what: impl Fn(f64) -> String,
    ) -> Result<&'static D> {
        let limit = crate::hook::seconds("max_wait_secs", limit)?;
        let mut pause = Duration::from_micros(50);
        loop {
            match req.test_with_data() {
                Ok((_, data)) => return Ok(data),
                Err(pending) => {
                    if start.elapsed() >= limit {
                        std::mem::forget(pending);
                        if let Ok(mut a) = ABANDONED.lock() {
                            a.push(Arc::clone(self));
                        }
                        let msg = what(start.elapsed().as_secs_f64());
                        return Err(Error::new(Code::DeadlineExceeded, msg));
                    }
                    req = pending;
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
            }
        }
    }
}

impl Drop for MpiRuntime {
    fn drop(&mut self) {
        if let Some(why) = self.left.lock().ok().and_then(|mut l| l.take()) {
            self.abort(&why);
        }
        if let Ok(mut u) = self.universe.lock() {
            drop(u.take());
        }
    }
}

impl Replicas for MpiRuntime {
    fn agree(&self, mine: StepState) -> Agreed {
        let words = distributed::encode(mine, self.world);
        let mut all = [0i32; 3];
        let comm = self.comm();
        mpi::request::scope(|scope| {
            let req = comm.immediate_all_reduce_into(
                scope,
                &words[..],
                &mut all[..],
                SystemOperation::max(),
            );
            finish(req);
        });
        distributed::decode(all, self.world)
    }

    fn reductions(&self) -> u64 {
        self.reductions.load(Ordering::SeqCst)
    }

    fn leave_uncleanly(&self, why: String) {
        if let Ok(mut l) = self.left.lock() {
            l.get_or_insert(why);
        }
    }

    fn abandon(&self, error: &Error) -> ! {
        self.abort(&format!(
            "{error} (the other ranks wait for it in a collective)"
        ))
    }
}

/// Completes `req`, yielding the core between tests: a rank waiting for a slower one
/// leaves the CPU to the threads of its own device (a software adapter shares the
/// cores with MPI's busy polling otherwise).
fn finish<'a, D: ?Sized, S: mpi::request::Scope<'a>>(mut req: mpi::request::Request<'a, D, S>) {
    loop {
        match req.test() {
            Ok(_) => return,
            Err(pending) => {
                req = pending;
                std::thread::yield_now();
            }
        }
    }
}

/// Averages gradients over `MPI_COMM_WORLD` (one `MPI_Allreduce` of f32 sums).
struct MpiReducer(Arc<MpiRuntime>);

impl GradientReducer for MpiReducer {
    fn all_reduce_mean(&self, grads: &mut [f32]) -> Result<()> {
        let rt = &self.0;
        let mut sum = rt
            .scratch
            .lock()
            .map_err(|_| Error::internal("all-reduce buffer lock poisoned"))?;
        sum.resize(grads.len(), 0.0);
        let comm = rt.comm();
        mpi::request::scope(|scope| {
            let req = comm.immediate_all_reduce_into(
                scope,
                &grads[..],
                &mut sum[..],
                SystemOperation::sum(),
            );
            finish(req);
        });
        let scale = 1.0 / rt.world.size as f32;
        for (g, s) in grads.iter_mut().zip(sum.iter()) {
            *g = *s * scale;
        }
        rt.reductions.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn abandon(&self, error: &Error) {
        Replicas::abandon(&*self.0, error)
    }
}

/// Which rank is the chief: each rank's `is_chief` (rank 0 when not given), gathered
/// within `max_wait_secs`; anything but exactly one chief is InvalidArgument on every
/// rank.
fn elect_chief(rt: &Arc<MpiRuntime>, is_chief: Option<bool>, max_wait_secs: f64) -> Result<usize> {
    let mine: &'static i32 = Box::leak(Box::new(i32::from(is_chief.unwrap_or(rt.world.rank == 0))));
    let all: &'static mut [i32] = Box::leak(vec![0i32; rt.world.size].into_boxed_slice());
    let req = rt.comm().immediate_all_gather_into(StaticScope, mine, all);
    let all = rt.wait_within(req, Instant::now(), max_wait_secs, |secs| {
        format!(
            "waited {secs:.1} s (max_wait_secs) for every rank to join the job; the chief (rank 0 unless is_chief names another) has not started its session"
        )
    })?;
    let chiefs: Vec<usize> = (0..all.len()).filter(|&r| all[r] == 1).collect();
    match chiefs.as_slice() {
        [one] => Ok(*one),
        _ => Err(Error::invalid_argument(format!(
            "a distributed job needs exactly one chief; is_chief is true on ranks {chiefs:?} of {}",
            rt.world.size
        ))),
    }
}

/// Joins the job: the chief elected within `max_wait_secs`, and how this rank creates
/// its sessions.
pub(crate) fn join(is_chief: Option<bool>, max_wait_secs: f64) -> Result<distributed::Rank> {
    let rt = init()?;
    let chief = elect_chief(&rt, is_chief, max_wait_secs)?;
    let replicas: Arc<dyn Replicas> = Arc::clone(&rt) as Arc<dyn Replicas>;
    let is_chief = rt.world.rank == chief;
    let creator = move |s: distributed::RankSettings| -> Box<dyn SessionCreator> {
        let inner = is_chief.then(|| ChiefSessionCreator {
            scaffold: Arc::clone(&s.scaffold),
            checkpoint_dir: s.checkpoint_dir,
            checkpoint_filename_with_path: None,
            start_fresh_if_unrestorable: false,
            config: s.config.clone(),
        });
        Box::new(MpiSessionCreator {
            rt,
            chief,
            inner,
            scaffold: s.scaffold,
            config: s.config,
            max_wait_secs: s.max_wait_secs,
            logged: false,
        })
    };
    Ok(distributed::Rank {
        is_chief,
        creator: Box::new(creator),
        replicas,
    })
}

const MAGIC: u64 = 0x7767_7472_6169_6e01;

/// What the chief broadcasts before its variables: [magic, status code (0: ok), graph
/// fingerprint, payload bytes].
type Header = [u64; 4];

/// Fingerprint of what every rank must agree on: the variables broadcast and the
/// gradients averaged (names, dtypes, shapes).
fn fingerprint(g: &Graph) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for v in g.global_variables() {
        let n = g.node(v);
        (&n.name, n.dtype.name(), &n.shape).hash(&mut h);
    }
    for t in g.averaged_gradients() {
        (g.name(t), g.shape(t)).hash(&mut h);
    }
    h.finish()
}

fn payload_bytes(g: &Graph, vars: &[Tensor]) -> u64 {
    vars.iter()
        .map(|v| {
            let n = g.node(*v);
            n.shape.iter().product::<i64>().max(0) as u64 * n.dtype.host_size() as u64
        })
        .sum()
}

/// The session creator of a distributed job: the chief creates its session as a
/// single process would (restore or initialize) and broadcasts its variables; a worker
/// opens its device, waits for them at most `max_wait_secs`, and runs its local init.
/// Every session averages its gradients over the ranks.
struct MpiSessionCreator {
    rt: Arc<MpiRuntime>,
    chief: usize,
    /// The chief's own creator (on the chief only).
    inner: Option<ChiefSessionCreator>,
    scaffold: Arc<Scaffold>,
    config: SessionConfig,
    max_wait_secs: f64,
    logged: bool,
}

impl MpiSessionCreator {
    /// The config of this rank: the adapter of its node-local rank unless one is named.
    fn rank_config(config: &SessionConfig, world: World) -> SessionConfig {
        let mut c = config.clone();
        if c.adapter_name.is_none() && c.adapter_index.is_none() {
            c.adapter_index = Some(world.local_rank);
        }
        c
    }

    /// Broadcasts `header` from the chief; a worker waits for it at most
    /// `max_wait_secs`.
    fn broadcast_header(&self, header: Header) -> Result<Header> {
        let comm = self.rt.comm();
        let root = comm.process_at_rank(self.chief as i32);
        // 32 bytes that outlive an abandoned wait (the broadcast may still complete).
        let buf: &'static mut [u64] = Box::leak(header.to_vec().into_boxed_slice());
        let req = root.immediate_broadcast_into(StaticScope, buf);
        let chief = self.chief;
        let data = self.rt.wait_within(req, Instant::now(), self.max_wait_secs, |secs| {
            format!(
                "waited {secs:.1} s (max_wait_secs) for the chief (rank {chief}) to restore or initialize the model and broadcast its variables"
            )
        })?;
        let mut out = [0u64; 4];
        out.copy_from_slice(&data[..4]);
        Ok(out)
    }

    /// Whether every rank's check passed (one all-reduce of the minimum).
    fn all_ok(&self, ok: bool) -> bool {
        let mine = i32::from(ok);
        let mut all = 0i32;
        self.rt
            .comm()
            .all_reduce_into(&mine, &mut all, SystemOperation::min());
        all == 1
    }

    fn broadcast_payload(&self, payload: &mut [u8]) {
        let comm = self.rt.comm();
        let root = comm.process_at_rank(self.chief as i32);
        mpi::request::scope(|scope| {
            root.immediate_broadcast_into(scope, payload).wait();
        });
    }

    fn create_chief(
        &mut self,
        graph: &Arc<Graph>,
        config: SessionConfig,
    ) -> Result<Box<dyn Executor>> {
        let inner = self
            .inner
            .as_mut()
            .ok_or_else(|| Error::internal("the chief has no session creator"))?;
        inner.config = config;
        let created = inner.create_session(graph);
        let vars = graph.global_variables();
        let status = match &created {
            Ok(_) => 0,
            Err(e) => e.code.value() as u64,
        };
        let header = [
            MAGIC,
            status,
            fingerprint(graph),
            payload_bytes(graph, &vars),
        ];
        self.broadcast_header(header)?;
        let mut sess = created?;
        if !self.all_ok(true) {
            return Err(mismatch(self.chief));
        }
        // The workers wait for the payload: it goes out even when reading failed.
        let values = sess.read_variables(&vars);
        let mut payload = Vec::with_capacity(header[3] as usize);
        match &values {
            Ok(values) => values
                .iter()
                .for_each(|v| payload.extend_from_slice(v.bytes())),
            Err(_) => payload.resize(header[3] as usize, 0),
        }
        self.broadcast_payload(&mut payload);
        self.settle(values.map(|_| ()))?;
        Ok(sess)
    }

    /// The outcome of this creation on every rank (one agreement): a rank's failure
    /// after the broadcast fails every rank with its code, or re-creates every rank's
    /// session when it is recoverable, so that no rank trains while another is gone.
    fn settle(&self, mine: Result<()>) -> Result<()> {
        let agreed = self.rt.agree(StepState::of(&mine, false));
        agreed.outcome(
            mine,
            "another rank could not start its session: every rank creates its session again",
        )
    }

    fn create_worker(
        &mut self,
        graph: &Arc<Graph>,
        config: SessionConfig,
    ) -> Result<Box<dyn Executor>> {
        let mut sess = match wgtrain_engine::executor::create(Arc::clone(graph), &config) {
            Ok(s) => s,
            Err(e) => Replicas::abandon(&*self.rt, &e.context("opening this rank's device")),
        };
        let header = self.broadcast_header([0; 4])?;
        if header[0] != MAGIC {
            return Err(Error::internal(format!(
                "the chief (rank {}) broadcast something else than its variables",
                self.chief
            )));
        }
        if header[1] != 0 {
            let code = distributed::code_of(header[1] as i32);
            return Err(Error::new(
                code,
                format!(
                    "the chief (rank {}) could not create its session ({}); its log has the cause",
                    self.chief,
                    code.name()
                ),
            ));
        }
        let vars = graph.global_variables();
        let ok = header[2] == fingerprint(graph) && header[3] == payload_bytes(graph, &vars);
        if !self.all_ok(ok) {
            return Err(mismatch(self.chief));
        }
        let mut payload = vec![0u8; header[3] as usize];
        self.broadcast_payload(&mut payload);
        let started = self.start_worker(graph, &mut *sess, &vars, &payload);
        self.settle(started)?;
        Ok(sess)
    }

    /// A worker's variables from the chief's `payload`, then its local init.
    fn start_worker(
        &self,
        graph: &Graph,
        sess: &mut dyn Executor,
        vars: &[Tensor],
        payload: &[u8],
    ) -> Result<()> {
        let mut at = 0usize;
        let mut values = Vec::with_capacity(vars.len());
        for v in vars {
            let n = graph.node(*v);
            let shape: Vec<usize> = n.shape.iter().map(|&d| d.max(0) as usize).collect();
            let len = shape.iter().product::<usize>() * n.dtype.host_size();
            let bytes = payload[at..at + len].to_vec();
            at += len;
            values.push((*v, HostTensor::from_bytes(n.dtype, &shape, bytes)?));
        }
        sess.write_variables(&values)?;
        let sc = &self.scaffold;
        if let Some(op) = sc.get_local_init_op() {
            sess.run(&[], &[], &[op])?;
        }
        if let Some(msg) = not_ready(sess, &sc.ready_vars(graph)) {
            return Err(Error::failed_precondition(format!(
                "the chief's variables did not make the model ready on rank {}: {msg}",
                self.rt.world.rank
            )));
        }
        Ok(())
    }
}

fn mismatch(chief: usize) -> Error {
    Error::invalid_argument(format!(
        "the ranks built different graphs: a worker's variables or gradients differ from the chief's (rank {chief}); every rank must build the same model"
    ))
}

impl SessionCreator for MpiSessionCreator {
    fn create_session(&mut self, graph: &Arc<Graph>) -> Result<Box<dyn Executor>> {
        let world = self.rt.world;
        let config = Self::rank_config(&self.config, world);
        let mut sess = if world.rank == self.chief {
            self.create_chief(graph, config)?
        } else {
            self.create_worker(graph, config)?
        };
        sess.set_gradient_reducer(Some(Arc::new(MpiReducer(Arc::clone(&self.rt)))))?;
        if !self.logged {
            self.logged = true;
            tracing::info!(
                rank = world.rank,
                size = world.size,
                local_rank = world.local_rank,
                chief = self.chief,
                adapter = %sess.device_name(),
                "distributed training: rank {} of {} on '{}'",
                world.rank,
                world.size,
                sess.device_name()
            );
        }
        Ok(sess)
    }
}
