//! Image classification data: the UCI handwritten digits embedded in the library, and
//! a reader for the MNIST files a user downloaded.

use crate::{Code, Error, HostTensor, Result};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};
use wgtrain_engine::rng::Stream;

const DIGITS_GZ: &[u8] = include_bytes!("../data/digits.csv.gz");

/// Labelled grayscale images of one size.
#[derive(Clone, Debug)]
pub struct Images {
    /// Pixels scaled to `[0, 1]`, `height * width` per image, row-major.
    pub images: Vec<f32>,
    /// Class labels 0..=9.
    pub labels: Vec<i32>,
    /// Rows of an image.
    pub height: usize,
    /// Columns of an image.
    pub width: usize,
}

/// The UCI handwritten digits (1797 8x8 grayscale images, 10 classes; the copy
/// scikit-learn ships, CC BY 4.0: see `data/README.md`).
pub type Digits = Images;

/// Training and held-out examples.
#[derive(Clone, Debug)]
pub struct Split {
    /// Training images and labels.
    pub train: Images,
    /// Held-out images and labels.
    pub test: Images,
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
    Ok(Images {
        images,
        labels,
        height: 8,
        width: 8,
    })
}

impl Images {
    /// Pixels per image.
    pub fn pixels(&self) -> usize {
        self.height * self.width
    }

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
        Split {
            test: self.pick(&order[..n_test]),
            train: self.pick(&order[n_test..]),
        }
    }

    /// The examples `rows`, in that order.
    fn pick(&self, rows: &[usize]) -> Images {
        let p = self.pixels();
        Images {
            images: rows
                .iter()
                .flat_map(|&i| self.images[i * p..(i + 1) * p].iter().copied())
                .collect(),
            labels: rows.iter().map(|&i| self.labels[i]).collect(),
            height: self.height,
            width: self.width,
        }
    }

    /// The `index`-th of `count` disjoint shards: every `count`-th example from the
    /// `index`-th (a rank's part of the data in data-parallel training). `count` 0 or 1
    /// is the whole set.
    pub fn shard(&self, index: usize, count: usize) -> Images {
        if count <= 1 {
            return self.clone();
        }
        let rows: Vec<usize> = (index..self.len()).step_by(count).collect();
        self.pick(&rows)
    }

    /// Examples `rows` as tensors: images `[rows, height * width]` (or
    /// `[rows, height, width, 1]` with `nhwc`) and labels `[rows]`.
    pub fn batch(&self, rows: &[usize], nhwc: bool) -> Result<(HostTensor, HostTensor)> {
        let p = self.pixels();
        let mut x = Vec::with_capacity(rows.len() * p);
        for &i in rows {
            x.extend_from_slice(&self.images[i * p..(i + 1) * p]);
        }
        let y = rows.iter().map(|&i| self.labels[i]).collect();
        let shape: &[usize] = if nhwc {
            &[rows.len(), self.height, self.width, 1]
        } else {
            &[rows.len(), p]
        };
        Ok((
            HostTensor::from_f32(shape, x)?,
            HostTensor::from_i32(&[rows.len()], y)?,
        ))
    }
}

/// The four MNIST files, as `yann.lecun.com` named them.
pub const MNIST_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Reads MNIST from `dir`: the four IDX files of [`MNIST_FILES`], each raw or gzipped
/// (`.gz`). The training files give `train`, the `t10k` ones `test`; pixels are scaled
/// to `[0, 1]`. NotFound names the first missing file; DataLoss names a file that is
/// not a valid IDX file, and InvalidArgument a pair whose counts differ.
pub fn mnist(dir: impl AsRef<Path>) -> Result<Split> {
    let dir = dir.as_ref();
    let read = |i: usize| read_idx(dir, MNIST_FILES[i]);
    let (train_x, train_y, test_x, test_y) = (read(0)?, read(1)?, read(2)?, read(3)?);
    Ok(Split {
        train: idx_images(train_x, train_y)?,
        test: idx_images(test_x, test_y)?,
    })
}

/// An IDX file's dimensions and bytes, with its path for messages.
struct Idx {
    path: PathBuf,
    dims: Vec<usize>,
    data: Vec<u8>,
}

/// Reads `<dir>/<name>` or `<dir>/<name>.gz`.
fn read_idx(dir: &Path, name: &str) -> Result<Idx> {
    let raw = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    let io = |p: &Path, e: std::io::Error| Error::io(format!("MNIST file {}", p.display()), &e);
    let (path, bytes) = if raw.is_file() {
        let b = std::fs::read(&raw).map_err(|e| io(&raw, e))?;
        (raw, b)
    } else if gz.is_file() {
        let mut b = Vec::new();
        let f = std::fs::File::open(&gz).map_err(|e| io(&gz, e))?;
        GzDecoder::new(f)
            .read_to_end(&mut b)
            .map_err(|e| io(&gz, e))?;
        (gz, b)
    } else {
        return Err(Error::new(
            Code::NotFound,
            format!(
                "MNIST file {} (or {name}.gz) not found in {}: the directory needs {}",
                raw.display(),
                dir.display(),
                MNIST_FILES.join(", ")
            ),
        ));
    };
    let bad = |why: String| {
        Error::new(
            Code::DataLoss,
            format!("MNIST file {}: {why}", path.display()),
        )
    };
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 {
        return Err(bad(
            "not an IDX file of unsigned bytes (bad magic number)".into()
        ));
    }
    let rank = bytes[3] as usize;
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(bad("truncated header".into()));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            let b = &bytes[4 + 4 * i..8 + 4 * i];
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
        })
        .collect();
    let want = dims.iter().product::<usize>();
    if bytes.len() - header != want {
        return Err(bad(format!(
            "{} data bytes where the dimensions {dims:?} give {want}",
            bytes.len() - header
        )));
    }
    Ok(Idx {
        path,
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Images and labels from an images file (rank 3) and a labels file (rank 1).
fn idx_images(x: Idx, y: Idx) -> Result<Images> {
    let [n, height, width] = x.dims[..] else {
        return Err(Error::new(
            Code::DataLoss,
            format!(
                "MNIST file {}: images need 3 dimensions, not {:?}",
                x.path.display(),
                x.dims
            ),
        ));
    };
    if y.dims.len() != 1 {
        return Err(Error::new(
            Code::DataLoss,
            format!(
                "MNIST file {}: labels need 1 dimension, not {:?}",
                y.path.display(),
                y.dims
            ),
        ));
    }
    if y.dims[0] != n {
        return Err(Error::invalid_argument(format!(
            "{} holds {n} images but {} holds {} labels",
            x.path.display(),
            y.path.display(),
            y.dims[0]
        )));
    }
    if let Some(bad) = y.data.iter().find(|&&l| l > 9) {
        return Err(Error::new(
            Code::DataLoss,
            format!(
                "MNIST file {}: label {bad} is not a digit",
                y.path.display()
            ),
        ));
    }
    Ok(Images {
        images: x.data.iter().map(|&p| f32::from(p) / 255.0).collect(),
        labels: y.data.iter().map(|&l| i32::from(l)).collect(),
        height,
        width,
    })
}
