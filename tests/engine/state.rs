//! Variables, assignment, control dependencies, planning and snapshots.

use crate::common::*;
use wgtrain::{Code, DType, Graph, HostTensor, Initializer, Reference};

#[test]
fn assign_ops_match_reference_for_every_dtype() {
    let mut g = Graph::new();
    let opts = wgtrain::engine::VariableOptions {
        trainable: false,
        ..Default::default()
    };
    let vf = g
        .variable("vf", DType::F32, &[3], Initializer::Constant(1.5))
        .unwrap();
    let vi = g
        .variable_with(
            "vi",
            DType::I32,
            &[3],
            Initializer::Constant(-4.0),
            opts.clone(),
        )
        .unwrap();
    let vl = g
        .variable_with(
            "vl",
            DType::I64,
            &[2],
            Initializer::Value(HostTensor::from_i64(&[2], vec![(1 << 32) - 1, -1]).unwrap()),
            opts,
        )
        .unwrap();
    let cf = g
        .constant(
            HostTensor::from_f32(&[3], vec![0.5, -1.0, 2.0]).unwrap(),
            "cf",
        )
        .unwrap();
    let ci = g
        .constant(HostTensor::from_i32(&[3], vec![7, -8, 9]).unwrap(), "ci")
        .unwrap();
    let cl = g
        .constant(HostTensor::from_i64(&[2], vec![1, 1 << 35]).unwrap(), "cl")
        .unwrap();
    let af = g.assign_add(vf, cf).unwrap();
    let ai = g.assign_sub(vi, ci).unwrap();
    let al = g.assign_add(vl, cl).unwrap();
    let sl = g.assign_sub(vl, cl).unwrap();
    let set = g.assign(vf, cf).unwrap();
    let init = g.global_variables_initializer().unwrap();
    let g = std::sync::Arc::new(g);
    let mut reference = Reference::new(g.clone());
    let Some(mut s) = gpu_session_arc(g.clone()) else {
        return;
    };
    for r in [&mut reference as &mut dyn Runner, &mut s as &mut dyn Runner] {
        r.go(&[], &[init]);
    }
    for fetches in [vec![af, ai, al], vec![af, ai, al], vec![sl], vec![set]] {
        let want = reference.run(&[], &fetches, &[]).unwrap();
        let got = s.run(&[], &fetches, &[]).unwrap();
        for (a, b) in got.iter().zip(&want) {
            assert_eq!(a, b);
        }
    }
    let l = s.read_variables(&[vl]).unwrap();
    assert_eq!(l[0].as_i64().unwrap(), vec![1 << 32, (1 << 35) - 1]);
}

trait Runner {
    fn go(&mut self, fetches: &[wgtrain::Tensor], targets: &[wgtrain::Operation]);
}
impl Runner for Reference {
    fn go(&mut self, f: &[wgtrain::Tensor], t: &[wgtrain::Operation]) {
        self.run(&[], f, t).unwrap();
    }
}
impl Runner for wgtrain::Session {
    fn go(&mut self, f: &[wgtrain::Tensor], t: &[wgtrain::Operation]) {
        self.run(&[], f, t).unwrap();
    }
}

#[test]
fn control_dependencies_order_reads_before_updates() {
    let mut g = Graph::new();
    let v = g
        .variable("v", DType::F32, &[], Initializer::Constant(1.0))
        .unwrap();
    let before = g.identity(v, "before").unwrap();
    let one = g.scalar(1.0).unwrap();
    let inc = g
        .control_dependencies(&[before.op()], |g| g.assign_add(v, one))
        .unwrap();
    let grp = g.group(&[inc.op()], "step").unwrap();
    let init = g.global_variables_initializer().unwrap();
    let Some(mut s) = gpu(g) else { return };
    s.run(&[], &[], &[init]).unwrap();
    for k in 0..3 {
        let out = s.run(&[], &[before, v], &[grp]).unwrap();
        assert_eq!(
            out[0].as_f32().unwrap(),
            vec![1.0 + k as f32],
            "read before the update"
        );
        assert_eq!(
            out[1].as_f32().unwrap(),
            vec![2.0 + k as f32],
            "variable after the update"
        );
    }
}

#[test]
fn a_run_is_planned_once_and_submitted_once() {
    let mut g = Graph::new();
    let x = g.placeholder("x", DType::F32, &[-1, 4]).unwrap();
    let w = g
        .variable("w", DType::F32, &[4, 2], Initializer::GlorotUniform)
        .unwrap();
    let y = g.matmul(x, w).unwrap();
    let r = g.relu(y).unwrap();
    let loss = g.reduce_mean(r, &[], false).unwrap();
    let init = g.global_variables_initializer().unwrap();
    let Some(mut s) = gpu(g) else { return };
    s.run(&[], &[], &[init]).unwrap();
    let xv = HostTensor::from_f32(&[3, 4], vec![0.5; 12]).unwrap();
    s.run(&[(x, xv.clone())], &[loss], &[]).unwrap();
    let plans = s.stats().plans;
    for _ in 0..5 {
        s.run(&[(x, xv.clone())], &[loss], &[]).unwrap();
    }
    let st = s.stats();
    assert_eq!(st.plans, plans, "replayed, not re-planned");
    assert_eq!(st.submissions, 1);
    assert_eq!(st.dispatches, 3, "matmul, relu, mean");
    assert_eq!(st.readback_bytes, 4, "only the fetched scalar is read back");
    // A new batch size is a new plan.
    s.run(
        &[(x, HostTensor::from_f32(&[5, 4], vec![0.5; 20]).unwrap())],
        &[loss],
        &[],
    )
    .unwrap();
    assert_eq!(s.stats().plans, plans + 1);
}

#[test]
fn snapshots_deliver_values_after_the_run() {
    let mut g = Graph::new();
    let v = g
        .variable("v", DType::F32, &[2], Initializer::Constant(3.0))
        .unwrap();
    let step = g.global_step().unwrap();
    let one = g.constant(HostTensor::scalar_i64(1), "one").unwrap();
    let inc = g.assign_add(step, one).unwrap();
    let init = g.global_variables_initializer().unwrap();
    let Some(mut s) = gpu(g) else { return };
    s.run(&[], &[], &[init]).unwrap();
    let (_, snap) = s
        .run_and_snapshot(&[], &[], &[inc.op()], &[v, step])
        .unwrap();
    // More steps run before the snapshot is read: it must still hold step 1.
    for _ in 0..3 {
        s.run(&[], &[], &[inc.op()]).unwrap();
    }
    let vals = snap.wait().unwrap();
    assert_eq!(vals[0].as_f32().unwrap(), vec![3.0, 3.0]);
    assert_eq!(vals[1].as_i64().unwrap(), vec![1]);
    assert_eq!(
        s.read_variables(&[step]).unwrap()[0].as_i64().unwrap(),
        vec![4]
    );
}

#[test]
fn write_variables_validates_everything_first() {
    let mut g = Graph::new();
    let a = g
        .variable("a", DType::F32, &[2], Initializer::Zeros)
        .unwrap();
    let b = g
        .variable("b", DType::F32, &[3], Initializer::Zeros)
        .unwrap();
    let Some(mut s) = gpu(g) else { return };
    let good = HostTensor::from_f32(&[2], vec![1.0, 2.0]).unwrap();
    let bad = HostTensor::from_f32(&[2], vec![1.0, 2.0]).unwrap();
    let e = s
        .write_variables(&[(a, good.clone()), (b, bad)])
        .unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument);
    assert!(e.message.contains("'b'"), "{e}");
    assert!(!s.is_initialized(a), "nothing written on error");
    assert_eq!(s.uninitialized_variables(), vec![a, b]);
    s.write_variables(&[(a, good.clone())]).unwrap();
    assert_eq!(s.read_variables(&[a]).unwrap()[0], good);
    assert_eq!(s.uninitialized_variables(), vec![b]);
}

#[test]
fn seeded_initializers_match_between_backends_and_runs() {
    let build = |seed| {
        let mut g = Graph::new();
        g.set_seed(seed);
        let w = g
            .variable("w", DType::F32, &[33, 7], Initializer::GlorotNormal)
            .unwrap();
        let u = g
            .variable(
                "u",
                DType::F32,
                &[5],
                Initializer::RandomUniform {
                    min: -1.0,
                    max: 2.0,
                },
            )
            .unwrap();
        let init = g.global_variables_initializer().unwrap();
        (g, w, u, init)
    };
    let (g, w, u, init) = build(42);
    let mut r = Reference::new(g.clone());
    r.run(&[], &[], &[init]).unwrap();
    let want = r.run(&[], &[w, u], &[]).unwrap();
    let Some(mut s) = gpu(g) else { return };
    s.run(&[], &[], &[init]).unwrap();
    assert_eq!(s.read_variables(&[w, u]).unwrap(), want);
    let (g2, w2, _, init2) = build(43);
    let mut r2 = Reference::new(g2);
    r2.run(&[], &[], &[init2]).unwrap();
    assert_ne!(r2.run(&[], &[w2], &[]).unwrap()[0], want[0]);
}

#[test]
fn feeding_an_intermediate_tensor_replaces_its_computation() {
    let mut r = rng(60);
    let mut g = Graph::new();
    let x = ph(&mut g, "x", &[4, 3]);
    let h = g.relu(x).unwrap();
    let s = g.reduce_sum(h, &[1], false).unwrap();
    // h fed directly: x is not needed and may be left unfed.
    let hv = rand_f32(&mut r, &[4, 3], -1.0, 1.0);
    check_against_reference(g, &[(h, hv)], &[s, h], F32_RTOL);
}

#[test]
fn empty_batches_run_and_their_mean_is_nan() {
    let mut g = Graph::new();
    let x = g.placeholder("x", DType::F32, &[-1, 3]).unwrap();
    let w = g
        .variable("w", DType::F32, &[3, 2], Initializer::Ones)
        .unwrap();
    let y = g.matmul(x, w).unwrap();
    let sm = g.softmax(y).unwrap();
    let m = g.reduce_mean(y, &[], false).unwrap();
    let s = g.reduce_sum(y, &[0], false).unwrap();
    let empty = HostTensor::from_f32(&[0, 3], vec![]).unwrap();
    check_against_reference(g.clone(), &[(x, empty.clone())], &[y, sm, s, m], F32_RTOL);
    let init = g.global_variables_initializer().unwrap();
    let Some(mut sess) = gpu(g) else { return };
    sess.run(&[], &[], &[init]).unwrap();
    let out = sess.run(&[(x, empty)], &[y, m], &[]).unwrap();
    assert_eq!(out[0].shape(), &[0, 2]);
    assert!(out[1].scalar_value().unwrap().is_nan());
}

#[test]
fn many_feed_shapes_evict_old_plans_and_stay_correct() {
    let mut g = Graph::new();
    let x = g.placeholder("x", DType::F32, &[-1]).unwrap();
    let s = g.reduce_sum(x, &[], false).unwrap();
    let Some(mut sess) = gpu(g) else { return };
    for round in 0..2 {
        for n in 1..=70usize {
            let v = HostTensor::from_f32(&[n], vec![1.0; n]).unwrap();
            let out = sess.run(&[(x, v)], &[s], &[]).unwrap();
            assert_eq!(out[0].as_f32().unwrap(), vec![n as f32], "round {round}");
        }
    }
    // Every shape was planned again in the second round: only 64 plans are kept.
    assert_eq!(sess.stats().plans, 140);
}

#[test]
fn scope_names_are_not_tensors_and_sessions_move_between_threads() {
    let mut g = Graph::new();
    let x = g.placeholder("x", DType::F32, &[2]).unwrap();
    let r = g.name_scope("block", |g| g.relu(x)).unwrap();
    assert!(g.by_name("block").is_none());
    assert_eq!(g.by_name("block/Relu"), Some(r));
    fn send<T: Send>(_: &T) {}
    if let Some(s) = gpu(g) {
        send(&s);
        std::thread::spawn(move || drop(s)).join().unwrap();
    }
}

#[test]
fn the_host_knows_the_global_step_after_constant_increments() {
    let mut g = wgtrain::Graph::new();
    let step = g.global_step().unwrap();
    let one = g
        .constant(wgtrain::HostTensor::scalar_i64(1), "one")
        .unwrap();
    let tick = g.assign_add(step, one).unwrap();
    let other = g
        .variable_with(
            "v",
            wgtrain::DType::I64,
            &[],
            wgtrain::Initializer::Zeros,
            wgtrain::engine::VariableOptions {
                trainable: false,
                ..Default::default()
            },
        )
        .unwrap();
    let copy = g.assign(step, other).unwrap();
    let init = g.global_variables_initializer().unwrap();
    let Some(mut s) = crate::common::gpu(g) else {
        return;
    };
    s.run(&[], &[], &[init]).unwrap();
    // Initialized on the device: unknown until read.
    assert_eq!(s.known_scalar(step), None);
    s.read_variables(&[step]).unwrap();
    assert_eq!(s.known_scalar(step), Some(0));
    for _ in 0..3 {
        s.run(&[], &[], &[tick.op()]).unwrap();
    }
    assert_eq!(s.known_scalar(step), Some(3));
    assert_eq!(
        s.read_variables(&[step]).unwrap()[0].as_i64().unwrap(),
        vec![3]
    );
    // An assignment from a device value: forgotten.
    s.run(&[], &[], &[copy.op()]).unwrap();
    assert_eq!(s.known_scalar(step), None);
    // Written from the host, or fetched: known again.
    s.write_variables(&[(step, wgtrain::HostTensor::scalar_i64(40))])
        .unwrap();
    assert_eq!(s.known_scalar(step), Some(40));
    s.run(&[], &[], &[copy.op()]).unwrap();
    let out = s.run(&[], &[step], &[tick.op()]).unwrap();
    assert_eq!(out[0].as_i64().unwrap(), vec![1]);
    assert_eq!(s.known_scalar(step), Some(1));
}
