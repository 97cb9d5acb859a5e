//! Trains a classifier on the UCI handwritten digits (embedded in the binary) and prints
//! the held-out accuracy.
//!
//! `cargo run --release --example digits [-- --steps N --batch N --lr X]`

use flate2::read::GzDecoder;
use std::io::Read;
use std::time::Instant;
use wgtrain::engine::rng::Stream;
use wgtrain::{
    Adam, Code, DType, Error, Graph, HostTensor, Initializer, Session, SessionConfig, Tensor,
};

const DIGITS: &[u8] = include_bytes!("data/digits.csv.gz");
const TRAIN_ROWS: usize = 1500;

struct Data {
    x: Vec<f32>,
    y: Vec<i32>,
}

fn load() -> wgtrain::Result<Data> {
    let mut text = String::new();
    GzDecoder::new(DIGITS)
        .read_to_string(&mut text)
        .map_err(|e| Error::new(Code::DataLoss, format!("embedded digits data: {e}")))?;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate() {
        let vals: Vec<f32> = line
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|e| Error::new(Code::DataLoss, format!("digits row {i}: {e}")))?;
        if vals.len() != 65 {
            return Err(Error::new(
                Code::DataLoss,
                format!("digits row {i}: {} fields, want 65", vals.len()),
            ));
        }
        x.extend(vals[..64].iter().map(|v| v / 16.0));
        y.push(vals[64] as i32);
    }
    Ok(Data { x, y })
}

fn dense(g: &mut Graph, x: Tensor, units: i64, relu: bool, name: &str) -> wgtrain::Result<Tensor> {
    let inputs = g.shape(x)[1];
    g.name_scope(name, |g| {
        let w = g.variable(
            "kernel",
            DType::F32,
            &[inputs, units],
            Initializer::GlorotUniform,
        )?;
        let b = g.variable("bias", DType::F32, &[units], Initializer::Zeros)?;
        let m = g.matmul(x, w)?;
        let a = g.bias_add(m, b)?;
        if relu { g.relu(a) } else { Ok(a) }
    })
}

fn arg(args: &[String], flag: &str, default: f64) -> wgtrain::Result<f64> {
    match args.iter().position(|a| a == flag) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::invalid_argument(format!("{flag} needs a number"))),
    }
}

fn main() -> wgtrain::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let steps = arg(&args, "--steps", 1500.0)? as usize;
    let batch = arg(&args, "--batch", 64.0)? as usize;
    let lr = arg(&args, "--lr", 3e-3)? as f32;
    let data = load()?;
    let n = data.y.len();

    let mut g = Graph::new();
    g.set_seed(0);
    let x = g.placeholder("x", DType::F32, &[-1, 64])?;
    let y = g.placeholder("y", DType::I32, &[-1])?;
    let h = dense(&mut g, x, 64, true, "hidden")?;
    let logits = dense(&mut g, h, 10, false, "logits")?;
    let loss = g.sparse_softmax_cross_entropy_mean(logits, y)?;
    let pred = g.argmax(logits, 1)?;
    let correct = g.equal(pred, y)?;
    let correct = g.cast(correct, DType::F32)?;
    let accuracy = g.reduce_mean(correct, &[], false)?;
    let step = g.global_step()?;
    let train = Adam::new(lr).minimize(&mut g, loss, step)?;
    let init = g.global_variables_initializer()?;
    g.finalize();

    let mut sess = Session::new(g, SessionConfig::default())?;
    println!(
        "device: {} ({})",
        sess.adapter().name,
        sess.adapter().backend
    );
    sess.run(&[], &[], &[init])?;
    let mut rng = Stream::new((0, 1));
    let started = Instant::now();
    for s in 1..=steps {
        let (mut bx, mut by) = (Vec::with_capacity(batch * 64), Vec::with_capacity(batch));
        for _ in 0..batch {
            let i = (rng.uniform() * TRAIN_ROWS as f64) as usize % TRAIN_ROWS;
            bx.extend_from_slice(&data.x[i * 64..(i + 1) * 64]);
            by.push(data.y[i]);
        }
        let feeds = [
            (x, HostTensor::from_f32(&[batch, 64], bx)?),
            (y, HostTensor::from_i32(&[batch], by)?),
        ];
        if s % 250 == 0 || s == steps {
            let out = sess.run(&feeds, &[loss], &[train])?;
            println!("step {s:>5}  loss {:.4}", out[0].scalar_value()?);
        } else {
            sess.run(&feeds, &[], &[train])?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let held = n - TRAIN_ROWS;
    let feeds = [
        (
            x,
            HostTensor::from_f32(&[held, 64], data.x[TRAIN_ROWS * 64..].to_vec())?,
        ),
        (
            y,
            HostTensor::from_i32(&[held], data.y[TRAIN_ROWS..].to_vec())?,
        ),
    ];
    let acc = sess.run(&feeds, &[accuracy], &[])?[0].scalar_value()?;
    println!(
        "{steps} steps in {secs:.1} s ({:.0} steps/s)",
        steps as f64 / secs
    );
    println!("held-out accuracy: {:.2}% on {held} images", acc * 100.0);
    Ok(())
}
