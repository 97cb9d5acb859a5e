//! Convolution and pooling: forward kernels against the reference on random inputs over
//! strides, paddings, dilations and odd sizes; bad shapes rejected at build time.

use crate::common::*;
use wgtrain::{Code, Conv, DType, Graph, Padding, Pool};

/// (input NHWC, filter HWIO, strides, dilations, padding)
pub const CONV_CASES: &[([usize; 4], [usize; 4], [usize; 2], [usize; 2], Padding)] = &[
    ([2, 7, 9, 3], [3, 3, 3, 5], [1, 1], [1, 1], Padding::Same),
    ([2, 7, 9, 3], [3, 3, 3, 5], [1, 1], [1, 1], Padding::Valid),
    // Stride 2 over odd sizes: SAME pads one more at the bottom/right.
    ([1, 7, 7, 2], [3, 3, 2, 4], [2, 2], [1, 1], Padding::Same),
    ([3, 8, 5, 1], [2, 3, 1, 6], [2, 1], [1, 1], Padding::Valid),
    ([1, 9, 9, 2], [3, 3, 2, 3], [1, 1], [2, 2], Padding::Same),
    ([2, 6, 6, 4], [1, 1, 4, 7], [1, 1], [1, 1], Padding::Valid),
    // More channels and outputs than one tile.
    ([2, 5, 5, 37], [3, 3, 37, 40], [1, 1], [1, 1], Padding::Same),
    ([1, 4, 4, 3], [5, 5, 3, 2], [3, 3], [1, 1], Padding::Same),
];

/// (input NHWC, filter [h, w, channels, multiplier], strides, dilations, padding)
pub const DEPTHWISE_CASES: &[([usize; 4], [usize; 4], [usize; 2], [usize; 2], Padding)] = &[
    ([2, 7, 9, 3], [3, 3, 3, 2], [1, 1], [1, 1], Padding::Same),
    ([2, 7, 9, 3], [3, 3, 3, 1], [1, 1], [1, 1], Padding::Valid),
    ([1, 7, 7, 2], [3, 3, 2, 4], [2, 2], [1, 1], Padding::Same),
    ([3, 8, 5, 4], [2, 3, 4, 1], [2, 1], [1, 1], Padding::Valid),
    ([1, 9, 9, 2], [3, 3, 2, 3], [1, 1], [2, 2], Padding::Same),
    ([1, 4, 4, 3], [5, 5, 3, 2], [3, 3], [1, 1], Padding::Same),
];

/// (input, ksize, strides, padding)
pub const POOL_CASES: &[([usize; 4], [usize; 2], [usize; 2], Padding)] = &[
    ([2, 6, 6, 3], [2, 2], [2, 2], Padding::Valid),
    ([2, 7, 7, 3], [2, 2], [2, 2], Padding::Same),
    ([1, 7, 5, 2], [3, 3], [2, 2], Padding::Same),
    ([3, 5, 8, 4], [3, 2], [1, 2], Padding::Valid),
    ([1, 4, 4, 1], [3, 3], [1, 1], Padding::Same),
];

#[test]
fn conv2d_matches_reference() {
    for (i, &(xs, fs, strides, dil, pad)) in CONV_CASES.iter().enumerate() {
        let mut r = rng(600 + i as u64);
        let mut g = Graph::new();
        let x = ph(&mut g, "x", &xs);
        let f = ph(&mut g, "f", &fs);
        let y = g
            .conv2d(x, f, Conv::new(strides, pad).with_dilations(dil))
            .unwrap();
        let feeds = vec![
            (x, rand_f32(&mut r, &xs, -1.0, 1.0)),
            (f, rand_f32(&mut r, &fs, -1.0, 1.0)),
        ];
        check_against_reference(g, &feeds, &[y], 1e-4);
    }
}

#[test]
fn depthwise_conv2d_matches_reference() {
    for (i, &(xs, fs, strides, dil, pad)) in DEPTHWISE_CASES.iter().enumerate() {
        let mut r = rng(620 + i as u64);
        let mut g = Graph::new();
        let x = ph(&mut g, "x", &xs);
        let f = ph(&mut g, "f", &fs);
        let y = g
            .depthwise_conv2d(x, f, Conv::new(strides, pad).with_dilations(dil))
            .unwrap();
        assert_eq!(g.shape(y)[3], (fs[2] * fs[3]) as i64);
        let feeds = vec![
            (x, rand_f32(&mut r, &xs, -1.0, 1.0)),
            (f, rand_f32(&mut r, &fs, -1.0, 1.0)),
        ];
        check_against_reference(g, &feeds, &[y], 1e-4);
    }
}

#[test]
fn depthwise_conv2d_shapes_follow_tf() {
    let mut g = Graph::new();
    let x = g.placeholder("x", DType::F32, &[-1, 28, 28, 3]).unwrap();
    let f = ph(&mut g, "f", &[3, 3, 3, 2]);
    let v = g
        .depthwise_conv2d(x, f, Conv::new([1, 1], Padding::Valid))
        .unwrap();
    assert_eq!(g.shape(v), &[-1, 26, 26, 6]);
    let s = g
        .depthwise_conv2d(x, f, Conv::new([2, 2], Padding::Same))
        .unwrap();
    assert_eq!(g.shape(s), &[-1, 14, 14, 6]);
    // The filter's third axis must be the input's channels.
    let f4 = ph(&mut g, "f4", &[3, 3, 4, 2]);
    let e = g
        .depthwise_conv2d(x, f4, Conv::new([1, 1], Padding::Same))
        .unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument);
    assert!(e.message.contains("channels"), "{e}");
}

#[test]
fn pooling_matches_reference() {
    for (i, &(xs, k, s, pad)) in POOL_CASES.iter().enumerate() {
        let mut r = rng(650 + i as u64);
        let mut g = Graph::new();
        let x = ph(&mut g, "x", &xs);
        let mx = g.max_pool(x, Pool::new(k, s, pad)).unwrap();
        let av = g.avg_pool(x, Pool::new(k, s, pad)).unwrap();
        let feeds = vec![(x, rand_f32(&mut r, &xs, -1.0, 1.0))];
        check_against_reference(g, &feeds, &[mx, av], 1e-5);
    }
}

#[test]
fn conv_output_shapes_follow_tf() {
    let mut g = Graph::new();
    let x = g.placeholder("x", DType::F32, &[-1, 28, 28, 1]).unwrap();
    let f = ph(&mut g, "f", &[3, 3, 1, 32]);
    let v = g.conv2d(x, f, Conv::new([1, 1], Padding::Valid)).unwrap();
    assert_eq!(g.shape(v), &[-1, 26, 26, 32]);
    let s = g.conv2d(x, f, Conv::new([2, 2], Padding::Same)).unwrap();
    assert_eq!(g.shape(s), &[-1, 14, 14, 32]);
    let p = g
        .max_pool(v, Pool::new([2, 2], [2, 2], Padding::Valid))
        .unwrap();
    assert_eq!(g.shape(p), &[-1, 13, 13, 32]);
    let q = g
        .avg_pool(x, Pool::new([3, 3], [2, 2], Padding::Same))
        .unwrap();
    assert_eq!(g.shape(q), &[-1, 14, 14, 1]);
}

#[test]
fn bad_conv_and_pool_shapes_are_invalid_argument() {
    let mut g = Graph::new();
    let x = ph(&mut g, "x", &[1, 5, 5, 3]);
    let f = ph(&mut g, "f", &[3, 3, 4, 8]);
    let e = g
        .conv2d(x, f, Conv::new([1, 1], Padding::Same))
        .unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument);
    assert!(e.message.contains("channels"), "{e}");
    let f2 = ph(&mut g, "f2", &[7, 7, 3, 8]);
    let e = g
        .conv2d(x, f2, Conv::new([1, 1], Padding::Valid))
        .unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument);
    let f3 = ph(&mut g, "f3", &[3, 3, 3, 8]);
    let e = g
        .conv2d(x, f3, Conv::new([0, 1], Padding::Same))
        .unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument);
    let flat = ph(&mut g, "flat", &[5, 5]);
    let e = g
        .conv2d(flat, f3, Conv::new([1, 1], Padding::Same))
        .unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument);
    let e = g
        .max_pool(x, Pool::new([6, 6], [1, 1], Padding::Valid))
        .unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument);
    let e = g
        .avg_pool(x, Pool::new([2, 0], [1, 1], Padding::Same))
        .unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument);
}
