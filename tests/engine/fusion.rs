//! The planner's fused kernels (matmul epilogues, bias gradients in the kernel-gradient
//! matmul, one optimizer dispatch over a parameter arena with the step's bookkeeping)
//! give the same values as the reference whether or not fusion applies.

use crate::common::*;
use wgtrain::engine::Optimizer;
use wgtrain::{
    Adam, DType, Graph, HostTensor, Initializer, Momentum, Operation, Reference, RmsProp, Sgd,
    Tensor,
};

struct Net {
    g: Graph,
    x: Tensor,
    y: Tensor,
    hidden: Tensor,
    pre_act: Tensor,
    loss: Tensor,
    vars: Vec<Tensor>,
    train: Operation,
    init: Operation,
}

fn net(opt: Optimizer) -> Net {
    let mut g = Graph::new();
    g.set_seed(3);
    let x = g.placeholder("x", DType::F32, &[-1, 5]).unwrap();
    let y = g.placeholder("y", DType::I32, &[-1]).unwrap();
    let w1 = g
        .variable("w1", DType::F32, &[5, 7], Initializer::GlorotUniform)
        .unwrap();
    let b1 = g
        .variable(
            "b1",
            DType::F32,
            &[7],
            Initializer::RandomUniform {
                min: -0.1,
                max: 0.1,
            },
        )
        .unwrap();
    let w2 = g
        .variable("w2", DType::F32, &[7, 3], Initializer::GlorotUniform)
        .unwrap();
    let b2 = g
        .variable("b2", DType::F32, &[3], Initializer::Zeros)
        .unwrap();
    let m = g.matmul(x, w1).unwrap();
    let pre_act = g.bias_add(m, b1).unwrap();
    let hidden = g.relu(pre_act).unwrap();
    let m2 = g.matmul(hidden, w2).unwrap();
    let logits = g.bias_add(m2, b2).unwrap();
    let loss = g.sparse_softmax_cross_entropy_mean(logits, y).unwrap();
    let step = g.global_step().unwrap();
    let train = opt.minimize(&mut g, loss, step).unwrap();
    let init = g.global_variables_initializer().unwrap();
    Net {
        g,
        x,
        y,
        hidden,
        pre_act,
        loss,
        vars: vec![w1, b1, w2, b2, step],
        train,
        init,
    }
}

fn feeds(n: &Net, seed: u64) -> Vec<(Tensor, HostTensor)> {
    let mut r = rng(seed);
    vec![
        (n.x, rand_f32(&mut r, &[9, 5], -1.0, 1.0)),
        (n.y, rand_i32(&mut r, &[9], 0, 3)),
    ]
}

/// The reference and a GPU session over the net, both initialized.
fn sessions(n: &Net) -> Option<(Reference, wgtrain::Session)> {
    let g = std::sync::Arc::new(n.g.clone());
    let mut r = Reference::new(g.clone());
    let mut s = gpu_session_arc(g)?;
    r.run(&[], &[], &[n.init]).unwrap();
    s.run(&[], &[], &[n.init]).unwrap();
    Some((r, s))
}

/// Runs `steps` steps fetching `extra` along with the loss; compares everything,
/// the variables included, with the reference after each step.
fn compare(opt: Optimizer, extra: impl Fn(&Net) -> Vec<Tensor>) {
    let n = net(opt);
    let fetch: Vec<Tensor> = std::iter::once(n.loss).chain(extra(&n)).collect();
    let Some((mut r, mut s)) = sessions(&n) else {
        return;
    };
    for k in 0..4 {
        let f = feeds(&n, k);
        let want = r.run(&f, &fetch, &[n.train]).unwrap();
        let got = s.run(&f, &fetch, &[n.train]).unwrap();
        for ((a, b), t) in got.iter().zip(&want).zip(&fetch) {
            assert_close(&format!("step {k} {}", n.g.name(*t)), a, b, 1e-4);
        }
        let want = r.run(&[], &n.vars, &[]).unwrap();
        let got = s.read_variables(&n.vars).unwrap();
        for ((a, b), t) in got.iter().zip(&want).zip(&n.vars) {
            assert_close(&format!("step {k} {}", n.g.name(*t)), a, b, 1e-4);
        }
    }
}

#[test]
fn every_optimizer_fused_matches_reference() {
    for opt in [
        Sgd::new(0.1),
        Momentum::new(0.05).nesterov(true),
        Adam::new(0.01),
        RmsProp::new(0.01),
    ] {
        compare(opt, |_| vec![]);
    }
}

#[test]
fn fetching_intermediates_disables_their_fusion_without_changing_values() {
    // The pre-activation and hidden layer fetched: the epilogue chain cannot hide them.
    compare(Adam::new(0.01), |n| vec![n.pre_act, n.hidden]);
}

#[test]
fn fetching_the_step_and_beta_powers_with_the_train_op() {
    compare(Adam::new(0.01), |n| {
        let b1p = n.g.by_name("beta1_power").unwrap();
        vec![b1p, n.vars[4]]
    });
}

#[test]
fn running_one_update_alone_uses_the_unfused_path() {
    let n = net(Adam::new(0.01));
    // The apply op of w1 alone (a subset of the group): computed per variable.
    let apply_w1 =
        n.g.nodes()
            .iter()
            .position(|node| node.name.contains("update_w1"))
            .map(|i| n.g.by_name(&n.g.nodes()[i].name).unwrap())
            .unwrap();
    let Some((mut r, mut s)) = sessions(&n) else {
        return;
    };
    let f = feeds(&n, 11);
    r.run(&f, &[], &[apply_w1.op()]).unwrap();
    s.run(&f, &[], &[apply_w1.op()]).unwrap();
    let want = r.run(&[], &n.vars, &[]).unwrap();
    let got = s.read_variables(&n.vars).unwrap();
    for ((a, b), t) in got.iter().zip(&want).zip(&n.vars) {
        assert_close(n.g.name(*t), a, b, 1e-5);
    }
    // Only w1 changed; the step did not move.
    assert_eq!(got[4].as_i64().unwrap(), vec![0]);
}

#[test]
fn a_training_step_is_a_handful_of_dispatches() {
    let n = net(Adam::new(0.01));
    let Some(mut s) = gpu(n.g.clone()) else {
        return;
    };
    s.run(&[], &[], &[n.init]).unwrap();
    let f = feeds(&n, 1);
    s.run(&f, &[], &[n.train]).unwrap();
    // With ten storage bindings a kernel: the hidden layer and the classifier head with
    // its cross-entropy gradient; both layers' backward passes (kernel and bias
    // gradients, the ReLU-masked hidden gradient recomputed where needed); one optimizer
    // update with its bookkeeping. With fewer, the hidden layer forward, the head, and
    // the hidden layer's kernel and bias gradients are separate kernels.
    let wide = s.adapter().max_storage_buffers_per_shader_stage >= 10;
    assert_eq!(s.stats().dispatches, if wide { 3 } else { 5 });
}

/// An MLP with the given layer widths (ReLU between layers when `relu`), trained with
/// Adam without fetching anything, compared with the reference after every step.
/// `fused` is the dispatches of a step when the adapter binds ten storage buffers.
fn mlp_matches_reference(widths: &[usize], relu: bool, batches: &[usize], fused: usize) {
    let mut g = Graph::new();
    g.set_seed(9);
    let x = g
        .placeholder("x", DType::F32, &[-1, widths[0] as i64])
        .unwrap();
    let classes = *widths.last().unwrap();
    let y = g.placeholder("y", DType::I32, &[-1]).unwrap();
    let mut h = x;
    let mut vars = Vec::new();
    for (i, pair) in widths.windows(2).enumerate() {
        let k = g
            .variable(
                &format!("k{i}"),
                DType::F32,
                &[pair[0] as i64, pair[1] as i64],
                Initializer::GlorotUniform,
            )
            .unwrap();
        let b = g
            .variable(
                &format!("b{i}"),
                DType::F32,
                &[pair[1] as i64],
                Initializer::RandomUniform {
                    min: -0.2,
                    max: 0.2,
                },
            )
            .unwrap();
        vars.extend([k, b]);
        let m = g.matmul(h, k).unwrap();
        h = g.bias_add(m, b).unwrap();
        if relu && i + 2 < widths.len() {
            h = g.relu(h).unwrap();
        }
    }
    let loss = g.sparse_softmax_cross_entropy_mean(h, y).unwrap();
    let train = Adam::new(0.01).minimize(&mut g, loss, None).unwrap();
    let init = g.global_variables_initializer().unwrap();
    let g = std::sync::Arc::new(g);
    let mut r = Reference::new(g.clone());
    let Some(mut s) = gpu_session_arc(g.clone()) else {
        return;
    };
    r.run(&[], &[], &[init]).unwrap();
    s.run(&[], &[], &[init]).unwrap();
    for &batch in batches {
        for k in 0..2 {
            let mut rg = rng(400 + k + batch as u64);
            let f = vec![
                (x, rand_f32(&mut rg, &[batch, widths[0]], -1.0, 1.0)),
                (y, rand_i32(&mut rg, &[batch], 0, classes as i32)),
            ];
            r.run(&f, &[], &[train]).unwrap();
            s.run(&f, &[], &[train]).unwrap();
            if s.adapter().max_storage_buffers_per_shader_stage >= 10 {
                assert_eq!(s.stats().dispatches, fused, "{widths:?}");
            }
            let want = r.run(&[], &vars, &[]).unwrap();
            let got = s.read_variables(&vars).unwrap();
            for ((a, b), t) in got.iter().zip(&want).zip(&vars) {
                let what = format!(
                    "{widths:?} relu {relu} batch {batch} step {k} {}",
                    g.name(*t)
                );
                assert_close(&what, a, b, 1e-4);
            }
        }
    }
}

#[test]
fn two_layer_fusions_match_reference_across_shapes() {
    // Several tiles of inputs and units in the lower layer's gradients, 64 units (the
    // most the head computes), batches of one row, one tile and several tiles.
    mlp_matches_reference(&[70, 40, 7], true, &[1, 33, 70], 3);
    mlp_matches_reference(&[3, 64, 32], true, &[5, 32], 3);
    // No ReLU between: the hidden layer is a plain bias epilogue, dh is unmasked.
    mlp_matches_reference(&[9, 11, 4], false, &[6, 40], 3);
    // Too wide for the head to compute the hidden layer; the chain still applies.
    mlp_matches_reference(&[6, 65, 5], true, &[3], 4);
    // Three layers: the head computes the middle one; the middle layer needs its input
    // gradient, so the top layer's backward pass is not chained to it, but the middle
    // layer's (10 outputs) is chained to the bottom one's.
    mlp_matches_reference(&[8, 12, 10, 3], true, &[4, 37], 5);
}

/// Trains without fetching anything (the plan the fused classifier head serves) and
/// compares the variables with the reference after every step.
fn train_only(n: &Net, batch: usize, steps: u64) {
    let Some((mut r, mut s)) = sessions(n) else {
        return;
    };
    for k in 0..steps {
        let mut rg = rng(100 + k);
        let f = vec![
            (n.x, rand_f32(&mut rg, &[batch, 5], -1.0, 1.0)),
            (n.y, rand_i32(&mut rg, &[batch], 0, 3)),
        ];
        r.run(&f, &[], &[n.train]).unwrap();
        s.run(&f, &[], &[n.train]).unwrap();
        let want = r.run(&[], &n.vars, &[]).unwrap();
        let got = s.read_variables(&n.vars).unwrap();
        for ((a, b), t) in got.iter().zip(&want).zip(&n.vars) {
            assert_close(
                &format!("batch {batch} step {k} {}", n.g.name(*t)),
                a,
                b,
                1e-4,
            );
        }
    }
}

#[test]
fn train_only_steps_match_reference_for_small_and_multi_tile_batches() {
    let n = net(Adam::new(0.01));
    for batch in [1, 9, 32, 77] {
        train_only(&n, batch, 3);
    }
}

#[test]
fn classifier_head_with_dense_labels_and_a_summed_loss() {
    let mut g = Graph::new();
    g.set_seed(5);
    let x = g.placeholder("x", DType::F32, &[-1, 5]).unwrap();
    let y = g.placeholder("y", DType::F32, &[-1, 3]).unwrap();
    let w = g
        .variable("w", DType::F32, &[5, 3], Initializer::GlorotUniform)
        .unwrap();
    let b = g
        .variable(
            "b",
            DType::F32,
            &[3],
            Initializer::RandomUniform {
                min: -0.5,
                max: 0.5,
            },
        )
        .unwrap();
    let m = g.matmul(x, w).unwrap();
    let logits = g.bias_add(m, b).unwrap();
    let per_row = g.softmax_cross_entropy_with_logits(y, logits).unwrap();
    let loss = g.reduce_sum(per_row, &[], false).unwrap();
    let train = Sgd::new(0.1).minimize(&mut g, loss, None).unwrap();
    let init = g.global_variables_initializer().unwrap();
    let g = std::sync::Arc::new(g);
    let mut r = Reference::new(g.clone());
    let Some(mut s) = gpu_session_arc(g.clone()) else {
        return;
    };
    r.run(&[], &[], &[init]).unwrap();
    s.run(&[], &[], &[init]).unwrap();
    for k in 0..3 {
        let mut rg = rng(200 + k);
        let f = vec![
            (x, rand_f32(&mut rg, &[40, 5], -1.0, 1.0)),
            (y, rand_f32(&mut rg, &[40, 3], 0.0, 1.0)),
        ];
        r.run(&f, &[], &[train]).unwrap();
        s.run(&f, &[], &[train]).unwrap();
        let want = r.run(&[], &[w, b], &[]).unwrap();
        let got = s.read_variables(&[w, b]).unwrap();
        for (a, bb) in got.iter().zip(&want) {
            assert_close(&format!("step {k}"), a, bb, 1e-4);
        }
    }
    let mut rg = rng(300);
    let f = vec![
        (x, rand_f32(&mut rg, &[40, 5], -1.0, 1.0)),
        (y, rand_f32(&mut rg, &[40, 3], 0.0, 1.0)),
    ];
    s.run(&f, &[], &[train]).unwrap();
    // The head with its gradient, the kernel and bias gradients, the update.
    assert_eq!(s.stats().dispatches, 3);
}

#[test]
fn a_traced_run_times_every_kernel_and_returns_the_same_values() {
    let n = net(Adam::new(0.01));
    let Some((mut r, mut s)) = sessions(&n) else {
        return;
    };
    let f = feeds(&n, 21);
    let want = r.run(&f, &[n.loss], &[n.train]).unwrap();
    let (got, meta) = s.run_traced(&f, &[n.loss], &[n.train]).unwrap();
    assert_close("traced loss", &got[0], &want[0], 1e-5);
    assert_eq!(meta.kernels.len(), s.stats().dispatches);
    for k in &meta.kernels {
        assert!(!k.node.is_empty() && !k.kernel.is_empty(), "{k:?}");
        assert!(k.duration_ns >= 0.0 && k.start_ns >= 0.0, "{k:?}");
    }
    if meta.timed {
        assert!(meta.kernels.iter().any(|k| k.duration_ns > 0.0));
        // In order of recording: the starts do not go backwards.
        assert!(
            meta.kernels
                .windows(2)
                .all(|w| w[1].start_ns >= w[0].start_ns)
        );
    }
    // The optimizer update is the last kernel, named after the group's last apply node.
    let last = meta.kernels.last().unwrap();
    assert!(last.node.contains("apply"), "{last:?}");
    let want = r.run(&[], &n.vars, &[]).unwrap();
    let got = s.read_variables(&n.vars).unwrap();
    for ((a, b), t) in got.iter().zip(&want).zip(&n.vars) {
        assert_close(n.g.name(*t), a, b, 1e-5);
    }
}

#[test]
fn snapshots_of_arena_variables_match_the_reference() {
    // Adam's variables and slots live in arenas; a snapshot copies each arena's span
    // at once. Every global variable, in an order unlike the arena's, must come back
    // with the reference's value after the step.
    let n = net(Adam::new(0.01));
    let Some((mut r, mut s)) = sessions(&n) else {
        return;
    };
    let mut all = n.g.global_variables();
    all.reverse();
    let mid = all.len() / 2;
    all.swap(0, mid);
    for k in 0..3 {
        let f = feeds(&n, 30 + k);
        r.run(&f, &[], &[n.train]).unwrap();
        let (_, snap) = s.run_and_snapshot(&f, &[], &[n.train], &all).unwrap();
        // A later step must not change what the snapshot holds.
        s.run(&feeds(&n, 99), &[], &[n.train]).unwrap();
        let got = snap.wait().unwrap();
        let want = r.run(&[], &all, &[]).unwrap();
        assert_eq!(got.len(), all.len());
        for ((a, b), t) in got.iter().zip(&want).zip(&all) {
            assert_close(n.g.name(*t), a, b, 1e-5);
        }
        r.run(&feeds(&n, 99), &[], &[n.train]).unwrap();
    }
}
