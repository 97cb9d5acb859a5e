//! The examples' training loop, with few steps.

use crate::{have_gpu, scratch};
use wgtrain::classifier::{Model, Options, train};
use wgtrain::datasets::digits;

fn quick(model: Model, steps: i64, dir: &std::path::Path) -> Options {
    let mut o = Options::new(model);
    o.steps = steps;
    o.batch = 32;
    o.checkpoint_dir = Some(dir.to_path_buf());
    o.save_checkpoint_steps = 25;
    o.save_summaries_steps = 10;
    o
}

#[test]
fn the_loss_falls_and_a_second_run_resumes() {
    if !have_gpu() {
        return;
    }
    let data = digits().unwrap().split(0.2, 7);
    let dir = scratch("classifier");
    let r = train(&data, &quick(Model::Mlp, 60, &dir)).unwrap();
    assert_eq!((r.start_step, r.final_step), (0, 60));
    assert!(r.restored_from.is_none());
    let (first, last) = (r.losses[0].1, r.losses[r.losses.len() - 1].1);
    assert!(last < 0.7 * first, "loss {first} -> {last}");
    assert!(r.held_out_accuracy > 0.5, "{}", r.held_out_accuracy);
    assert_eq!(r.checkpoint, Some(dir.join("model.ckpt-60")));
    // Summaries and checkpoints are where TensorBoard and TF look.
    assert!(dir.join("graph.pbtxt").exists());
    assert!(
        !wgtrain::checkpoint::events::event_files(&dir)
            .unwrap()
            .is_empty()
    );

    // Run again: it restores step 60 and trains 40 more.
    let r2 = train(&data, &quick(Model::Mlp, 40, &dir)).unwrap();
    assert_eq!(r2.restored_from, Some(dir.join("model.ckpt-60")));
    assert_eq!((r2.start_step, r2.final_step), (60, 100));
    assert!(r2.held_out_accuracy >= r.held_out_accuracy - 0.05);
}

#[test]
fn the_digits_example_reaches_97_percent_with_its_defaults() {
    // The digits example's defaults: the CNN, 1000 steps of 64, Adam 2e-3, checkpoints
    // and summaries on (the README's claim).
    if !have_gpu() {
        return;
    }
    let data = digits().unwrap().split(0.2, 7);
    let mut o = Options::new(Model::Cnn);
    o.checkpoint_dir = Some(scratch("classifier-defaults"));
    let r = train(&data, &o).unwrap();
    assert_eq!(r.final_step, 1000);
    assert!(
        r.held_out_accuracy >= 0.97,
        "held-out accuracy {}",
        r.held_out_accuracy
    );
}

#[test]
fn bad_options_are_invalid_argument() {
    let data = digits().unwrap().split(0.2, 7);
    let mut o = Options::new(Model::Mlp);
    o.batch = 0;
    let e = train(&data, &o).unwrap_err();
    assert_eq!(e.code, wgtrain::Code::InvalidArgument);
}

/// Every variable of the latest checkpoint in `dir`, as bytes.
fn variables(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let prefix = wgtrain::checkpoint::latest_checkpoint(dir).unwrap();
    let r = wgtrain::checkpoint::BundleReader::open(prefix).unwrap();
    r.list()
        .into_iter()
        .map(|(name, _, _)| {
            let t = r.get(&name).unwrap();
            let (bytes, _) = wgtrain::checkpoint::bundle::encode(&t);
            (name, bytes)
        })
        .collect()
}

#[test]
fn an_interrupted_and_resumed_run_equals_an_uninterrupted_one_bit_for_bit() {
    // 300 steps, stop, 300 more from the checkpoint, against 600 in one go: the batches
    // of a step depend on the step only, Adam's state and the step are in the checkpoint.
    if !have_gpu() {
        return;
    }
    let data = digits().unwrap().split(0.2, 7);
    let (whole, parts) = (scratch("exact-600"), scratch("exact-300-300"));
    let w = train(&data, &quick(Model::Mlp, 600, &whole)).unwrap();
    let a = train(&data, &quick(Model::Mlp, 300, &parts)).unwrap();
    let b = train(&data, &quick(Model::Mlp, 300, &parts)).unwrap();
    assert_eq!((a.final_step, b.start_step, b.final_step), (300, 300, 600));
    // Losses at the steps both recorded (every 30 and every 15 steps): bit for bit.
    let resumed: std::collections::BTreeMap<i64, u32> = a
        .losses
        .iter()
        .chain(&b.losses)
        .map(|(s, l)| (*s, l.to_bits()))
        .collect();
    let mut compared = 0;
    for (step, loss) in &w.losses {
        if let Some(bits) = resumed.get(step) {
            assert_eq!(*bits, loss.to_bits(), "loss at step {step}");
            compared += 1;
        }
    }
    assert!(compared >= 19, "{compared} losses compared");
    let (vw, vp) = (variables(&whole), variables(&parts));
    assert_eq!(vw.len(), vp.len());
    for ((n, x), (m, y)) in vw.iter().zip(&vp) {
        assert_eq!(n, m);
        assert!(x == y, "variable {n} differs");
    }
}

#[test]
fn another_models_checkpoints_are_caught_before_anything_trains() {
    // Before: `--model mlp` after the CNN example printed "Resuming from ..." and
    // then failed with a shape mismatch.
    if !have_gpu() {
        return;
    }
    let data = digits().unwrap().split(0.2, 7);
    let dir = scratch("two-models");
    assert_eq!(
        wgtrain::classifier::resumable(&data, &quick(Model::Mlp, 5, &dir)).unwrap(),
        None
    );
    train(&data, &quick(Model::Mlp, 5, &dir)).unwrap();
    assert_eq!(
        wgtrain::classifier::resumable(&data, &quick(Model::Mlp, 5, &dir)).unwrap(),
        Some(dir.join("model.ckpt-5"))
    );
    // The example keeps the models apart by default.
    let (cnn, mlp) = (
        wgtrain::classifier::default_run_dir(Model::Cnn),
        wgtrain::classifier::default_run_dir(Model::Mlp),
    );
    assert_ne!(cnn, mlp);
    assert_eq!(cnn, std::path::Path::new("runs/digits"));
    let e = wgtrain::classifier::resumable(&data, &quick(Model::Cnn, 5, &dir)).unwrap_err();
    assert_eq!(e.code, wgtrain::Code::InvalidArgument);
    assert!(e.message.contains("another model"), "{e}");
    assert!(
        e.message.contains("is not there") || e.message.contains("there and"),
        "{e}"
    );
}
