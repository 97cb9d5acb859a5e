//! Every bad-input case returns its canonical code and does not panic.

use crate::common::*;
use wgtrain::{Code, DType, Graph, HostTensor, Initializer};

fn graph() -> (Graph, wgtrain::Tensor, wgtrain::Tensor, wgtrain::Tensor) {
    let mut g = Graph::new();
    let x = g.placeholder("x", DType::F32, &[-1, 4]).unwrap();
    let w = g
        .variable("w", DType::F32, &[4, 2], Initializer::Ones)
        .unwrap();
    let y = g.matmul(x, w).unwrap();
    (g, x, w, y)
}

#[test]
fn feed_errors_are_invalid_argument() {
    let (mut g, x, w, y) = graph();
    let init = g.global_variables_initializer().unwrap();
    let mut other = Graph::new();
    for _ in 0..40 {
        other.placeholder("p", DType::F32, &[1]).unwrap();
    }
    let foreign = other.placeholder("q", DType::F32, &[1]).unwrap();
    let Some(mut s) = gpu(g) else { return };
    s.run(&[], &[], &[init]).unwrap();
    let ok = HostTensor::from_f32(&[2, 4], vec![1.0; 8]).unwrap();
    let cases: Vec<(
        &str,
        Vec<(wgtrain::Tensor, HostTensor)>,
        Vec<wgtrain::Tensor>,
        &str,
    )> = vec![
        (
            "wrong shape",
            vec![(x, HostTensor::from_f32(&[2, 5], vec![1.0; 10]).unwrap())],
            vec![y],
            "Cannot feed value of shape [2, 5] for tensor 'x', which has shape [?,4]",
        ),
        (
            "wrong rank",
            vec![(x, HostTensor::from_f32(&[8], vec![1.0; 8]).unwrap())],
            vec![y],
            "which has shape [?,4]",
        ),
        (
            "wrong dtype",
            vec![(x, HostTensor::from_i32(&[2, 4], vec![1; 8]).unwrap())],
            vec![y],
            "Cannot feed a int32 value for tensor 'x', which has dtype float32",
        ),
        (
            "missing feed",
            vec![],
            vec![y],
            "You must feed a value for placeholder tensor 'x' with dtype float32 and shape [?,4]",
        ),
        (
            "unknown fetch",
            vec![(x, ok.clone())],
            vec![foreign],
            "does not belong to this graph",
        ),
        (
            "feeding a variable",
            vec![(w, HostTensor::from_f32(&[4, 2], vec![1.0; 8]).unwrap())],
            vec![y],
            "'w' (VariableV2) cannot be fed",
        ),
        (
            "fed twice",
            vec![(x, ok.clone()), (x, ok.clone())],
            vec![y],
            "fed more than once",
        ),
    ];
    for (what, feeds, fetches, msg) in cases {
        let e = s.run(&feeds, &fetches, &[]).expect_err(what);
        assert_eq!(e.code, Code::InvalidArgument, "{what}: {e}");
        assert!(e.message.contains(msg), "{what}: {e}");
    }
    // The session still works after every error.
    assert_eq!(
        s.run(&[(x, ok)], &[y], &[]).unwrap()[0].as_f32().unwrap(),
        vec![4.0; 4]
    );
}

#[test]
fn a_second_run_with_the_same_plan_still_checks_dtypes() {
    let (g, x, _, y) = graph();
    let mut g = g;
    let init = g.global_variables_initializer().unwrap();
    let Some(mut s) = gpu(g) else { return };
    s.run(&[], &[], &[init]).unwrap();
    s.run(
        &[(x, HostTensor::from_f32(&[2, 4], vec![1.0; 8]).unwrap())],
        &[y],
        &[],
    )
    .unwrap();
    let e = s
        .run(
            &[(x, HostTensor::from_i32(&[2, 4], vec![1; 8]).unwrap())],
            &[y],
            &[],
        )
        .unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument);
}

#[test]
fn uninitialized_variable_is_failed_precondition() {
    let (g, x, w, y) = graph();
    let Some(mut s) = gpu(g) else { return };
    let e = s
        .run(
            &[(x, HostTensor::from_f32(&[1, 4], vec![1.0; 4]).unwrap())],
            &[y],
            &[],
        )
        .unwrap_err();
    assert_eq!(e.code, Code::FailedPrecondition);
    assert!(
        e.message
            .contains("Attempting to use uninitialized value w"),
        "{e}"
    );
    let e = s.read_variables(&[w]).unwrap_err();
    assert_eq!(e.code, Code::FailedPrecondition);
}

#[test]
fn build_time_errors() {
    let mut g = Graph::new();
    let i = g.placeholder("i", DType::I32, &[3]).unwrap();
    let f = g.placeholder("f", DType::F32, &[3]).unwrap();
    let m = g.placeholder("m", DType::F32, &[3, 4]).unwrap();
    let checks: Vec<(&str, wgtrain::Result<wgtrain::Tensor>)> = vec![
        ("exp of int", g.exp(i)),
        ("add of mixed dtypes", g.add(i, f)),
        ("matmul of rank 1", g.matmul(f, f)),
        ("matmul mismatch", g.matmul(m, m)),
        ("bad axis", g.reduce_sum(m, &[2], false)),
        ("bad reshape", g.reshape(m, &[5, -1])),
        ("bad transpose", g.transpose(m, &[0, 0])),
        ("softmax of int", g.softmax(i)),
        (
            "sparse labels as float",
            g.sparse_softmax_cross_entropy_with_logits(f, m),
        ),
        ("one_hot of float", g.one_hot(f, 3, 1.0, 0.0)),
        ("bias of wrong size", g.bias_add(m, f)),
        ("squeeze of non-1", g.squeeze(m, &[0])),
        (
            "variable with unknown dim",
            g.variable("v", DType::F32, &[-1], Initializer::Zeros),
        ),
        (
            "trainable int variable",
            g.variable("iv", DType::I32, &[2], Initializer::Zeros),
        ),
        ("assign to a non-variable", g.assign(f, f)),
        (
            "placeholder with bad shape",
            g.placeholder("bad", DType::F32, &[-2]),
        ),
    ];
    for (what, r) in checks {
        let e = r.expect_err(what);
        assert_eq!(e.code, Code::InvalidArgument, "{what}: {e}");
    }
    let no = g.no_op("nothing").unwrap();
    let e = g.relu(no_tensor(&g, no)).unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument);
}

fn no_tensor(g: &Graph, op: wgtrain::Operation) -> wgtrain::Tensor {
    g.by_name(g.name(op)).expect("node by name")
}

#[test]
fn run_time_shape_errors() {
    let mut g = Graph::new();
    let x = g.placeholder("x", DType::F32, &[-1, 6]).unwrap();
    let r = g.reshape(x, &[-1, 4]).unwrap();
    let a = g.placeholder("a", DType::F32, &[-1]).unwrap();
    let b = g.placeholder("b", DType::F32, &[-1]).unwrap();
    let sum = g.add(a, b).unwrap();
    let no = g.no_op("nothing").unwrap();
    let Some(mut s) = gpu(g) else { return };
    let e = s
        .run(
            &[(x, HostTensor::from_f32(&[1, 6], vec![0.0; 6]).unwrap())],
            &[r],
            &[],
        )
        .unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument, "{e}");
    assert!(e.message.contains("Reshape"), "{e}");
    let e = s
        .run(
            &[
                (a, HostTensor::from_f32(&[3], vec![0.0; 3]).unwrap()),
                (b, HostTensor::from_f32(&[4], vec![0.0; 4]).unwrap()),
            ],
            &[sum],
            &[],
        )
        .unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument, "{e}");
    assert!(
        e.message.contains("incompatible shapes: [3] vs. [4]"),
        "{e}"
    );
    let e = s.run(&[], &[no_tensor(s.graph(), no)], &[]).unwrap_err();
    assert_eq!(
        e.code,
        Code::InvalidArgument,
        "fetching an op as a tensor: {e}"
    );
    s.run(&[], &[], &[no]).unwrap();
}

#[test]
fn finalized_graph_is_failed_precondition() {
    let (mut g, x, ..) = graph();
    g.finalize();
    let e = g.relu(x).unwrap_err();
    assert_eq!(e.code, Code::FailedPrecondition);
    assert!(e.message.contains("finalized"), "{e}");
}

#[test]
fn no_adapter_error_says_how_to_get_one() {
    let cfg = wgtrain::SessionConfig::default().adapter_name("no-such-adapter-anywhere");
    let e = wgtrain::Session::new(Graph::new(), cfg)
        .err()
        .expect("no adapter by that name");
    assert_eq!(e.code, Code::NotFound);
    assert!(e.message.contains("mesa-vulkan-drivers"), "{e}");
}

#[test]
fn a_lost_device_is_aborted_and_a_new_session_recovers() {
    let (mut g, x, _, y) = graph();
    let init = g.global_variables_initializer().unwrap();
    let Some(probe) = gpu(Graph::new()) else {
        return;
    };
    // A device of its own (selected by name), so other tests keep theirs.
    let cfg = wgtrain::SessionConfig::default().adapter_name(probe.adapter().name.clone());
    let g = std::sync::Arc::new(g);
    let mut s = wgtrain::Session::new(g.clone(), cfg.clone()).unwrap();
    s.run(&[], &[], &[init]).unwrap();
    let feed = HostTensor::from_f32(&[1, 4], vec![1.0; 4]).unwrap();
    s.run(&[(x, feed.clone())], &[y], &[]).unwrap();
    s.simulate_device_loss();
    let e = s.run(&[(x, feed.clone())], &[y], &[]).unwrap_err();
    assert_eq!(e.code, Code::Aborted, "{e}");
    assert!(e.code.is_recoverable());
    let mut fresh = wgtrain::Session::new(g, cfg).unwrap();
    fresh.run(&[], &[], &[init]).unwrap();
    assert_eq!(
        fresh.run(&[(x, feed)], &[y], &[]).unwrap()[0]
            .as_f32()
            .unwrap(),
        vec![4.0, 4.0]
    );
}

#[test]
fn a_tensor_larger_than_a_storage_binding_is_resource_exhausted() {
    let Some(probe) = gpu(Graph::new()) else {
        return;
    };
    let limit = probe.adapter().max_storage_buffer_binding_size;
    let mut g = Graph::new();
    let opts = wgtrain::engine::VariableOptions {
        trainable: false,
        ..Default::default()
    };
    let elems = (limit / 4 + 1) as i64;
    let v = g
        .variable_with("huge", DType::F32, &[elems], Initializer::Zeros, opts)
        .unwrap();
    let Some(mut s) = gpu(g) else { return };
    let e = s.run(&[], &[v], &[]).unwrap_err();
    assert_eq!(e.code, Code::ResourceExhausted, "{e}");
    assert!(e.message.contains("huge"), "{e}");
}

#[test]
fn feeding_a_tensor_the_run_does_not_need_is_accepted() {
    let mut g = Graph::new();
    let x = g.placeholder("x", DType::F32, &[-1]).unwrap();
    let c = g.scalar(3.0).unwrap();
    let _ = x;
    let Some(mut s) = crate::common::gpu(g) else {
        return;
    };
    let out = s
        .run(
            &[(x, HostTensor::from_f32(&[2], vec![1.0, 2.0]).unwrap())],
            &[c],
            &[],
        )
        .unwrap();
    assert_eq!(out[0].as_f32().unwrap(), vec![3.0]);
}

#[test]
fn an_adapter_index_past_the_adapters_wraps_around() {
    // A distributed rank asks for the adapter of its node-local rank.
    let Some(probe) = gpu(Graph::new()) else {
        return;
    };
    let names: Vec<String> = wgtrain::engine::runtime::list_adapters(&Default::default())
        .into_iter()
        .map(|a| a.name)
        .collect();
    let cfg = wgtrain::SessionConfig::default()
        .adapter_name(probe.adapter().name.clone())
        .adapter_index(7);
    let s = wgtrain::Session::new(Graph::new(), cfg).unwrap();
    assert_eq!(s.adapter().name, probe.adapter().name);
    assert!(names.contains(&s.adapter().name), "{names:?}");
}

#[test]
fn a_device_wait_past_the_operation_timeout_is_deadline_exceeded() {
    // Four chained 1024×1024 matmuls take far longer than 1 ms on any device.
    let n = 1024;
    let mut g = Graph::new();
    let a = g
        .variable("a", DType::F32, &[n, n], Initializer::Constant(1e-3))
        .unwrap();
    let mut y = a;
    for _ in 0..4 {
        y = g.matmul(y, a).unwrap();
    }
    let init = g.global_variables_initializer().unwrap();
    let config = wgtrain::SessionConfig::default().operation_timeout_in_ms(1);
    let mut s = match wgtrain::Session::new(g, config) {
        Ok(s) => s,
        Err(e) => {
            wgtrain::engine::runtime::testing::skip_without_gpu(&e);
            return;
        }
    };
    s.run(&[], &[], &[init]).unwrap();
    let t = std::time::Instant::now();
    let ran = s.run(&[], &[y], &[]);
    // GL runs the work inside the submission itself: there is no wait to bound.
    if ran.is_ok() && s.adapter().backend == "Gl" {
        return;
    }
    let e = ran.unwrap_err();
    assert_eq!(e.code, Code::DeadlineExceeded, "{e}");
    assert!(e.message.contains("operation_timeout_in_ms"), "{e}");
    eprintln!("DeadlineExceeded after {:?}", t.elapsed());
    let config = wgtrain::SessionConfig::default();
    assert_eq!(config.operation_timeout(), None);
}

#[test]
fn a_handle_of_another_graph_is_invalid_argument_even_when_its_index_exists() {
    let (mut g, x, w, _) = graph();
    let mut other = Graph::new();
    let a = other.placeholder("a", DType::F32, &[-1, 4]).unwrap();
    let b = other
        .variable("b", DType::F32, &[4, 2], Initializer::Ones)
        .unwrap();
    assert!(a.index() < g.nodes().len() && b.index() < g.nodes().len());
    assert!(!g.contains(a) && g.contains(x));
    let e = g.matmul(a, w).unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument);
    assert!(e.message.contains("another graph"), "{e}");
    assert!(!g.is_variable(b));
    let Err(e) = wgtrain::checkpoint::Saver::with_vars(&g, &[b], Default::default()) else {
        panic!("a saver of another graph's variable");
    };
    assert_eq!(e.code, Code::InvalidArgument);
    // A clone shares the identity: its handles stay good in the original and back.
    let mut copy = g.clone();
    let y2 = copy.matmul(x, w).unwrap();
    assert!(copy.contains(y2) && copy.contains(x));
    let init = g.global_variables_initializer().unwrap();
    let Some(mut s) = gpu(g) else { return };
    s.run(&[], &[], &[init]).unwrap();
    let feed = HostTensor::from_f32(&[1, 4], vec![1.0; 4]).unwrap();
    let e = s.run(&[(a, feed.clone())], &[x], &[]).unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument, "{e}");
    let e = s.run(&[(x, feed)], &[b], &[]).unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument, "{e}");
    let e = s.read_variables(&[b]).unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument, "{e}");
}
