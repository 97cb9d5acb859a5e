//! The MNIST reader, on small IDX files the tests write.

use crate::{have_gpu, scratch};
use std::io::Write;
use std::path::Path;
use wgtrain::Code;
use wgtrain::datasets::{MNIST_FILES, mnist};

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

fn write(dir: &Path, name: &str, bytes: &[u8], gz: bool) {
    if gz {
        let f = std::fs::File::create(dir.join(format!("{name}.gz"))).unwrap();
        let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap();
    } else {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// `n` 6x5 images of each split whose pixel values tell their labels apart.
fn write_set(dir: &Path, n: u32, gz: bool) {
    for (k, split) in [(0usize, n), (2, n / 2)] {
        let labels: Vec<u8> = (0..split).map(|i| (i % 10) as u8).collect();
        let pixels: Vec<u8> = labels
            .iter()
            .flat_map(|&l| (0..30).map(move |p| if p % 10 == l as usize { 255 } else { 0 }))
            .collect();
        write(dir, MNIST_FILES[k], &idx(&[split, 6, 5], &pixels), gz);
        write(dir, MNIST_FILES[k + 1], &idx(&[split], &labels), !gz);
    }
}

#[test]
fn reads_raw_and_gzipped_idx_files() {
    let dir = scratch("mnist-read");
    write_set(&dir, 20, true);
    let s = mnist(&dir).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (20, 10));
    assert_eq!((s.train.height, s.train.width), (6, 5));
    assert_eq!(s.train.labels[..3], [0, 1, 2]);
    // Image 3 (label 3): pixels 3, 13, 23 are 1.0, the rest 0.
    let img = &s.train.images[3 * 30..4 * 30];
    assert_eq!(img[3], 1.0);
    assert_eq!(img[13], 1.0);
    assert_eq!(img[4], 0.0);
    let (x, y) = s.train.batch(&[0, 1], true).unwrap();
    assert_eq!(x.shape(), &[2, 6, 5, 1]);
    assert_eq!(y.as_i32().unwrap(), vec![0, 1]);
}

#[test]
fn a_missing_file_is_named() {
    let dir = scratch("mnist-missing");
    write_set(&dir, 20, false);
    std::fs::remove_file(dir.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let e = mnist(&dir).unwrap_err();
    assert_eq!(e.code, Code::NotFound);
    assert!(e.message.contains("t10k-labels-idx1-ubyte"), "{e}");
    let e = mnist(dir.join("nowhere")).unwrap_err();
    assert_eq!(e.code, Code::NotFound);
    assert!(e.message.contains("train-images-idx3-ubyte"), "{e}");
}

#[test]
fn damaged_files_are_data_loss_and_mismatches_invalid_argument() {
    let dir = scratch("mnist-bad");
    write_set(&dir, 20, false);
    // A bad magic number.
    std::fs::write(dir.join(MNIST_FILES[0]), b"\x00\x00\x09\x03abcd").unwrap();
    let e = mnist(&dir).unwrap_err();
    assert_eq!(e.code, Code::DataLoss);
    assert!(e.message.contains("train-images-idx3-ubyte"), "{e}");
    // Truncated data.
    let mut b = idx(&[20, 6, 5], &[0; 600]);
    b.truncate(b.len() - 7);
    std::fs::write(dir.join(MNIST_FILES[0]), &b).unwrap();
    assert_eq!(mnist(&dir).unwrap_err().code, Code::DataLoss);
    // 20 images, 19 labels.
    std::fs::write(dir.join(MNIST_FILES[0]), idx(&[20, 6, 5], &[0; 600])).unwrap();
    std::fs::remove_file(dir.join("train-labels-idx1-ubyte.gz")).unwrap();
    std::fs::write(dir.join(MNIST_FILES[1]), idx(&[19], &[1; 19])).unwrap();
    assert_eq!(mnist(&dir).unwrap_err().code, Code::InvalidArgument);
}

#[test]
fn a_cnn_learns_the_small_set() {
    if !have_gpu() {
        return;
    }
    let dir = scratch("mnist-train");
    write_set(&dir, 200, true);
    let data = mnist(&dir).unwrap();
    let mut o = wgtrain::classifier::Options::new(wgtrain::classifier::Model::Cnn);
    o.steps = 60;
    o.batch = 20;
    o.lr = 1e-2;
    let r = wgtrain::classifier::train(&data, &o).unwrap();
    assert!(r.held_out_accuracy > 0.9, "{}", r.held_out_accuracy);
}
