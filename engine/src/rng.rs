//! Counter-based random numbers (Philox 4x32-10) for seeded initializers.
//!
//! The stream is a pure function of (graph seed, op seed, element index), so the same
//! graph gives the same initial values on every run and every machine.

use crate::error::Result;
use crate::ops::Initializer;
use crate::tensor::{DType, HostTensor};

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Philox 4x32 with 10 rounds: four random words for `counter` under `key`.
pub fn philox4x32(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (counter, key);
    for _ in 0..10 {
        let p0 = u64::from(M0) * u64::from(c[0]);
        let p1 = u64::from(M1) * u64::from(c[2]);
        c = [
            ((p1 >> 32) as u32) ^ c[1] ^ k[0],
            p1 as u32,
            ((p0 >> 32) as u32) ^ c[3] ^ k[1],
            p0 as u32,
        ];
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
    }
    c
}

/// The Philox key of a (graph seed, op seed) pair.
pub fn key_of(seed: (u64, u64)) -> [u32; 2] {
    let mix = seed.0 ^ seed.1.rotate_left(32) ^ 0x5851_F42D_4C95_7F2D;
    [mix as u32, (mix >> 32) as u32]
}

/// Whether dropout with `rate` keeps element `i` at `step` (`random.wgsl` computes the
/// same): word `i % 4` of Philox at counter `(i / 4, step, 0x0D0F)` under the seeds'
/// key, as a uniform in `[0, 1)` with 24 bits, kept when at least `rate`.
pub fn dropout_keeps(seed: (u64, u64), i: u32, step: i64, rate: f32) -> bool {
    let words = philox4x32(
        [i / 4, step as u32, (step as u64 >> 32) as u32, 0x0D0F],
        key_of(seed),
    );
    let u = (words[(i % 4) as usize] >> 8) as f32 / (1u32 << 24) as f32;
    u >= rate
}

/// A stream of uniform and normal samples from (graph seed, op seed).
pub struct Stream {
    key: [u32; 2],
    stream: u64,
    counter: u64,
    buf: [u32; 4],
    pos: usize,
}

impl Stream {
    /// A stream keyed by the seed pair.
    pub fn new(seed: (u64, u64)) -> Self {
        Stream {
            key: key_of(seed),
            stream: seed.1,
            counter: 0,
            buf: [0; 4],
            pos: 4,
        }
    }

    fn next_u32(&mut self) -> u32 {
        if self.pos == 4 {
            let c = self.counter;
            self.counter += 1;
            self.buf = philox4x32(
                [
                    c as u32,
                    (c >> 32) as u32,
                    self.stream as u32,
                    (self.stream >> 32) as u32,
                ],
                self.key,
            );
            self.pos = 0;
        }
        self.pos += 1;
        self.buf[self.pos - 1]
    }

    /// Uniform in `[0, 1)` with 24 random bits (exact in f32).
    pub fn uniform(&mut self) -> f64 {
        f64::from(self.next_u32() >> 8) / f64::from(1u32 << 24)
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = (f64::from(self.next_u32()) + 1.0) / 4_294_967_297.0;
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Standard normal, redrawn until within two standard deviations.
    pub fn truncated_normal(&mut self) -> f64 {
        loop {
            let x = self.normal();
            if x.abs() <= 2.0 {
                return x;
            }
        }
    }
}

/// Fan-in and fan-out of a weight shape, as Keras computes them.
pub fn fans(shape: &[usize]) -> (f64, f64) {
    match shape.len() {
        0 => (1.0, 1.0),
        1 => (shape[0] as f64, shape[0] as f64),
        2 => (shape[0] as f64, shape[1] as f64),
        n => {
            let receptive: usize = shape[..n - 2].iter().product();
            (
                (receptive * shape[n - 2]) as f64,
                (receptive * shape[n - 1]) as f64,
            )
        }
    }
}

/// The value of `init` for a variable of `dtype` and `shape` (f32 values are rounded
/// once, so every consumer sees the same numbers).
pub fn initial_value(
    init: &Initializer,
    dtype: DType,
    shape: &[usize],
    seed: (u64, u64),
) -> Result<HostTensor> {
    let n: usize = shape.iter().product();
    let mut s = Stream::new(seed);
    let (fan_in, fan_out) = fans(shape);
    let values: Vec<f64> = match init {
        Initializer::Value(v) => return Ok(v.clone()),
        Initializer::Zeros => vec![0.0; n],
        Initializer::Ones => vec![1.0; n],
        Initializer::Constant(c) => vec![*c; n],
        Initializer::RandomUniform { min, max } => {
            (0..n).map(|_| min + (max - min) * s.uniform()).collect()
        }
        Initializer::RandomNormal { mean, stddev } => {
            (0..n).map(|_| mean + stddev * s.normal()).collect()
        }
        Initializer::TruncatedNormal { mean, stddev } => (0..n)
            .map(|_| mean + stddev * s.truncated_normal())
            .collect(),
        Initializer::GlorotUniform => {
            let limit = (6.0 / (fan_in + fan_out)).sqrt();
            (0..n).map(|_| limit * (2.0 * s.uniform() - 1.0)).collect()
        }
        Initializer::GlorotNormal => {
            let stddev = (2.0 / (fan_in + fan_out)).sqrt() / 0.879_625_661_034_239_8;
            (0..n).map(|_| stddev * s.truncated_normal()).collect()
        }
    };
    HostTensor::from_f64(dtype, shape, &values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_known_answer() {
        // Random123's known-answer test for philox4x32-10 with zero counter and key.
        assert_eq!(
            philox4x32([0, 0, 0, 0], [0, 0]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
    }

    #[test]
    fn seeded_initializers_are_deterministic_and_shaped() {
        let a = initial_value(&Initializer::GlorotUniform, DType::F32, &[64, 32], (1, 7)).unwrap();
        let b = initial_value(&Initializer::GlorotUniform, DType::F32, &[64, 32], (1, 7)).unwrap();
        let c = initial_value(&Initializer::GlorotUniform, DType::F32, &[64, 32], (2, 7)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let limit = (6.0f64 / 96.0).sqrt();
        let v = a.to_f64();
        assert!(v.iter().all(|x| x.abs() <= limit));
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.02, "{mean}");
        let t = initial_value(
            &Initializer::TruncatedNormal {
                mean: 0.0,
                stddev: 1.0,
            },
            DType::F32,
            &[4096],
            (0, 1),
        )
        .unwrap();
        let v = t.to_f64();
        assert!(v.iter().all(|x| x.abs() <= 2.0));
        let var = v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64;
        assert!((var - 0.774).abs() < 0.06, "{var}");
    }
}
