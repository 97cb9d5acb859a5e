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
