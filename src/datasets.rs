//! Small real datasets embedded in the library, for examples and tests.

use crate::{Code, Error, HostTensor, Result};
use flate2::read::GzDecoder;
use std::io::Read;
use wgtrain_engine::rng::Stream;

const DIGITS_GZ: &[u8] = include_bytes!("../data/digits.csv.gz");

/// The UCI handwritten digits (1797 8x8 grayscale images, 10 classes; the copy
/// scikit-learn ships, CC BY 4.0: see `data/README.md`).
#[derive(Clone, Debug)]
pub struct Digits {
    /// Pixels scaled to `[0, 1]`, 64 per image, row-major.
    pub images: Vec<f32>,
    /// Class labels 0..=9.
    pub labels: Vec<i32>,
}

/// A split of [`Digits`]: training and held-out examples.
#[derive(Clone, Debug)]
pub struct Split {
    /// Training images (64 floats each) and labels.
    pub train: Digits,
    /// Held-out images and labels.
    pub test: Digits,
}

/// Loads the embedded digits. DataLoss if the embedded copy is damaged.
pub fn digits() -> Result<Digits> {
    let mut text = String::new();
    GzDecoder::new(DIGITS_GZ)
        .read_to_string(&mut text)
        .map_err(|e| Error::new(Code::DataLoss, format!("embedded digits data: {e}")))?;
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate() {
        let vals: Vec<f32> = line
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::new(Code::DataLoss, format!("digits row {i}: {e}")))?;
        if vals.len() != 65 {
            return Err(Error::new(
                Code::DataLoss,
                format!("digits row {i}: {} fields, want 65", vals.len()),
            ));
        }
        images.extend(vals[..64].iter().map(|v| v / 16.0));
        labels.push(vals[64] as i32);
    }
    Ok(Digits { images, labels })
}

impl Digits {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// A seeded shuffle split with `held_out` (a fraction in (0, 1)) of the examples
    /// held out: the same seed gives the same split.
    pub fn split(&self, held_out: f64, seed: u64) -> Split {
        let mut order: Vec<usize> = (0..self.len()).collect();
        let mut r = Stream::new((seed, 0x5eed));
        // Fisher-Yates.
        for i in (1..order.len()).rev() {
            let j = ((r.uniform() * (i + 1) as f64) as usize).min(i);
            order.swap(i, j);
        }
        let n_test = ((self.len() as f64) * held_out).round() as usize;
        let pick = |idx: &[usize]| Digits {
            images: idx
                .iter()
                .flat_map(|&i| self.images[i * 64..(i + 1) * 64].iter().copied())
                .collect(),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
        };
        Split {
            test: pick(&order[..n_test]),
            train: pick(&order[n_test..]),
        }
    }

    /// Examples `rows` as tensors: images `[rows, 64]` (or `[rows, 8, 8, 1]` with
    /// `nhwc`) and labels `[rows]`.
    pub fn batch(&self, rows: &[usize], nhwc: bool) -> Result<(HostTensor, HostTensor)> {
        let mut x = Vec::with_capacity(rows.len() * 64);
        for &i in rows {
            x.extend_from_slice(&self.images[i * 64..(i + 1) * 64]);
        }
        let y = rows.iter().map(|&i| self.labels[i]).collect();
        let shape: &[usize] = if nhwc {
            &[rows.len(), 8, 8, 1]
        } else {
            &[rows.len(), 64]
        };
        Ok((
            HostTensor::from_f32(shape, x)?,
            HostTensor::from_i32(&[rows.len()], y)?,
        ))
    }
}
