//! Writes checkpoints for TensorFlow to read: a bundle of every dtype TF and wgtrain
//! share (`<dir>/bundle`) and a Saver checkpoint of a small model with its state file
//! (`<dir>/train`). `tools/tf_check_checkpoint.py <dir>` then lists and loads them with
//! TensorFlow (run by hand, not in CI).
//!
//! `cargo run --release --example checkpoint_for_tf -- DIR`

use wgtrain::checkpoint::{Saver, SaverOptions, Tensor, TfDType, write_bundle};
use wgtrain::{DType, Graph, HostTensor, Initializer, Session, SessionConfig};
fn main() -> wgtrain::Result<()> {
    let arg = std::env::args()
        .nth(1)
        .ok_or_else(|| wgtrain::Error::invalid_argument("usage: checkpoint_for_tf DIR"))?;
    let dir = std::path::Path::new(&arg);
    std::fs::create_dir_all(dir)
        .map_err(|e| wgtrain::Error::invalid_argument(format!("{}: {e}", dir.display())))?;
    let t = vec![
        (
            "f32".to_string(),
            Tensor::from_bytes(
                TfDType::Float,
                &[2, 3],
                [1.5f32, -2.0, 0.0, 3.25, 1e-30, -7.0]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            )?,
        ),
        (
            "i32".to_string(),
            Tensor::from_bytes(
                TfDType::Int32,
                &[3],
                [1i32, -5, i32::MIN]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            )?,
        ),
        (
            "u32".to_string(),
            Tensor::from_bytes(
                TfDType::UInt32,
                &[2],
                [7u32, u32::MAX]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            )?,
        ),
        (
            "i64".to_string(),
            Tensor::from_bytes(
                TfDType::Int64,
                &[],
                (-123456789012345i64).to_le_bytes().to_vec(),
            )?,
        ),
        (
            "bool".to_string(),
            Tensor::from_bytes(TfDType::Bool, &[3], vec![1, 0, 1])?,
        ),
        (
            "f64".to_string(),
            Tensor::from_bytes(TfDType::Double, &[1], 3.5f64.to_le_bytes().to_vec())?,
        ),
        (
            "empty".to_string(),
            Tensor::from_bytes(TfDType::Float, &[0, 4], vec![])?,
        ),
        (
            "str".to_string(),
            Tensor::from_strings(&[2], vec![b"hello".to_vec(), b"".to_vec()])?,
        ),
        (
            "big".to_string(),
            Tensor::from_bytes(
                TfDType::Float,
                &[300, 300],
                (0..90000)
                    .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
                    .collect(),
            )?,
        ),
    ];
    write_bundle(&dir.join("bundle"), &t)?;
    let mut g = Graph::new();
    let w = g.variable(
        "dense/kernel",
        DType::F32,
        &[3, 4],
        Initializer::Constant(0.25),
    )?;
    let _b = g.variable("dense/bias", DType::F32, &[4], Initializer::Ones)?;
    let step = g.global_step()?;
    let init = g.global_variables_initializer()?;
    let mut s = Session::new(g, SessionConfig::default())?;
    s.run(&[], &[], &[init])?;
    s.write_variables(&[
        (step, HostTensor::scalar_i64(42)),
        (
            w,
            HostTensor::from_f32(&[3, 4], (0..12).map(|v| v as f32).collect())?,
        ),
    ])?;
    let gr = s.graph_arc();
    let mut saver = Saver::new(&gr, SaverOptions::default())?;
    saver.save(&mut s, dir.join("train/model.ckpt"), Some(42))?;
    saver.close()?;
    println!("wrote {}/bundle and {}/train", dir.display(), dir.display());
    Ok(())
}
