//! A long run's footprint stays flat: live heap bytes (counted by this binary's
//! allocator), threads and open files, with summaries, step rates and logged tensors
//! every step and a checkpoint every 1000. CI runs `WGTRAIN_SOAK_STEPS` (default
//! 40 000) steps; by hand, `WGTRAIN_SOAK_STEPS=1000000 cargo test --release -p
//! wgtrain-hooks --test soak -- --nocapture` prints the curve of a 10^6-step run.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use std::alloc::System;
use wgtrain_hooks::*;

/// The system allocator, counting (stats_alloc: no unsafe code here).
#[global_allocator]
static ALLOC: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The heap bytes live now.
fn live() -> isize {
    let s = ALLOC.stats();
    // A reallocation is counted in both already (bytes_reallocated repeats it).
    s.bytes_allocated as isize - s.bytes_deallocated as isize
}

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// The resident set in bytes (the driver's memory too, which the allocator misses).
fn rss() -> isize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<isize>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

/// (step, live heap bytes, resident bytes, threads, open files).
type Sample = (i64, isize, isize, usize, usize);

#[test]
fn memory_threads_and_files_stay_flat_over_a_long_run() {
    let steps: i64 = std::env::var("WGTRAIN_SOAK_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40_000);
    // Hook histories grow to twice HISTORY entries, then keep between HISTORY and
    // twice that: after `warm` steps their buffers are at their largest.
    let period = basic::HISTORY as i64;
    let warm = 2 * period;
    assert!(
        steps >= warm + 2 * period,
        "a soak needs at least {} steps",
        warm + 2 * period
    );
    let m = model();
    let dir = scratch("soak");
    let clock: hook::SharedClock = std::sync::Arc::new(hook::SystemClock);
    let log = LoggingTensorHook::new(
        vec![("loss".into(), m.loss)],
        Some(1),
        None,
        false,
        clock.clone(),
    )
    .unwrap();
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .checkpoint_dir(&dir)
        .save_checkpoint_steps(1000)
        .save_summaries_steps(1)
        .log_step_count_steps(1)
        .hooks([Box::new(log) as Box<dyn SessionRunHook>])
        .create()
        .unwrap();
    let feeds = feed(&m);
    // Ten samples a period: each stretch of `period` steps sees the sawtooth's top.
    let every = (period / 10).max(1);
    let mut samples: Vec<Sample> = Vec::new();
    for step in 1..=steps {
        sess.run(&feeds, &[], &[m.train]).unwrap();
        if step % every == 0 {
            samples.push((
                step,
                live(),
                rss(),
                count("/proc/self/task"),
                count("/proc/self/fd"),
            ));
        }
    }
    sess.close().unwrap();
    let print_every = (steps / 40).max(every);
    for (step, live, rss, threads, files) in &samples {
        if step % print_every != 0 {
            continue;
        }
        eprintln!(
            "step {step:>8}  heap {live:>10} B  rss {:>7.1} MiB  threads {threads:>3}  files {files:>3}",
            *rss as f64 / (1 << 20) as f64
        );
    }
    let peak = |from: i64, to: i64, f: fn(&Sample) -> isize| {
        samples
            .iter()
            .filter(|s| s.0 > from && s.0 <= to)
            .map(f)
            .max()
            .unwrap()
    };
    // After the warm-up, the heap's peak over the last stretch of `period` steps is
    // within 32 KiB of the first one's (a leak of 4 bytes a step would show), plus a
    // byte an entry of the histories holding text for each digit the step number
    // gained (logged lines name their step).
    let digits = |n: i64| n.to_string().len() as isize;
    let allowed = (32 << 10) + (digits(steps) - digits(warm + period)) * 4 * period as isize;
    let (first, last) = (
        peak(warm, warm + period, |s| s.1),
        peak(steps - period, steps, |s| s.1),
    );
    assert!(
        last - first < allowed,
        "the heap's peak grew from {first} to {last} bytes over {} steps",
        steps - warm - period
    );
    // The resident set, the driver's allocations included, within 8 MiB.
    let (first, last) = (
        peak(warm, warm + period, |s| s.2),
        peak(steps - period, steps, |s| s.2),
    );
    assert!(
        last - first < 8 << 20,
        "the resident set grew from {first} to {last} bytes"
    );
    let after_start: Vec<&Sample> = samples.iter().filter(|s| s.0 > warm).collect();
    let (t0, f0) = (after_start[0].3, after_start[0].4);
    for s in &after_start {
        assert!(s.3 <= t0, "threads grew: {s:?} after {t0}");
        assert!(s.4 <= f0 + 1, "open files grew: {s:?} after {f0}");
    }
}
