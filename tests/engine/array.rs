//! Slicing, padding, tiling, concatenation, select, gathers, segment sums and dropout:
//! forward kernels against the reference on random inputs, bad input rejected.

use crate::common::*;
use wgtrain::engine::StridedSpec;
use wgtrain::{Code, DType, Graph, HostTensor};

fn spec(begin: &[i64], end: &[i64], strides: &[i64], masks: [u64; 3]) -> StridedSpec {
    StridedSpec {
        begin: begin.to_vec(),
        end: end.to_vec(),
        strides: strides.to_vec(),
        begin_mask: masks[0],
        end_mask: masks[1],
        shrink_axis_mask: masks[2],
    }
}

#[test]
fn slices_pads_tiles_and_concats_match_reference() {
    let mut r = rng(800);
    let mut g = Graph::new();
    let x = ph(&mut g, "x", &[4, 5, 6]);
    let ys = vec![
        g.slice(x, &[1, 0, 2], &[2, -1, 3]).unwrap(),
        // Negative indices and steps, masks, a shrunk axis.
        g.strided_slice(x, spec(&[-1, 0, 1], &[0, 5, -1], &[-1, 2, 2], [0, 0, 0]))
            .unwrap(),
        g.strided_slice(x, spec(&[0, 3, 0], &[4, 0, 6], &[1, -2, 3], [1, 2, 0]))
            .unwrap(),
        g.strided_slice(x, spec(&[2, 0], &[3, 5], &[1, 1], [0, 0, 1]))
            .unwrap(),
        g.strided_slice(x, spec(&[0], &[0], &[1], [1, 1, 0]))
            .unwrap(),
        // Empty result.
        g.strided_slice(x, spec(&[3], &[1], &[1], [0, 0, 0]))
            .unwrap(),
        g.pad(x, &[[1, 0], [0, 2], [3, 1]], 0.5).unwrap(),
        g.tile(x, &[2, 1, 3]).unwrap(),
    ];
    let a = ph(&mut g, "a", &[4, 2, 6]);
    let b = ph(&mut g, "b", &[4, 3, 6]);
    let mut ys = ys;
    ys.push(g.concat(&[x, a, b], 1).unwrap());
    ys.push(g.concat(&[x, x], -1).unwrap());
    ys.push(g.concat(&[x, x], 0).unwrap());
    let feeds = vec![
        (x, rand_f32(&mut r, &[4, 5, 6], -1.0, 1.0)),
        (a, rand_f32(&mut r, &[4, 2, 6], -1.0, 1.0)),
        (b, rand_f32(&mut r, &[4, 3, 6], -1.0, 1.0)),
    ];
    let shapes: Vec<Vec<i64>> = ys.iter().map(|&y| g.shape(y).to_vec()).collect();
    assert_eq!(shapes[0], vec![2, 5, 3]);
    assert_eq!(shapes[1], vec![3, 3, 2]);
    assert_eq!(shapes[3], vec![5, 6]);
    assert_eq!(shapes[5], vec![0, 5, 6]);
    assert_eq!(shapes[6], vec![5, 7, 10]);
    assert_eq!(shapes[8], vec![4, 10, 6]);
    check_against_reference(g, &feeds, &ys, 0.0);
}

#[test]
fn int_and_int64_tensors_slice_and_concat_exactly() {
    let mut g = Graph::new();
    let x = g.placeholder("x", DType::I32, &[3, 4]).unwrap();
    let w = g.placeholder("w", DType::I64, &[3, 2]).unwrap();
    let ys = vec![
        g.strided_slice(x, spec(&[0, 3], &[3, 0], &[2, -1], [0, 0, 0]))
            .unwrap(),
        g.concat(&[w, w], 1).unwrap(),
        g.pad(w, &[[0, 1], [1, 0]], -7.0).unwrap(),
        g.tile(w, &[1, 2]).unwrap(),
    ];
    let feeds = vec![
        (
            x,
            HostTensor::from_i32(&[3, 4], (0..12).map(|v| v * 7 - 40).collect()).unwrap(),
        ),
        (
            w,
            HostTensor::from_i64(&[3, 2], vec![1 << 40, -3, 5, -(1 << 35), 0, 9]).unwrap(),
        ),
    ];
    check_against_reference(g, &feeds, &ys, 0.0);
}

#[test]
fn select_gather_and_segment_sum_match_reference() {
    let mut r = rng(810);
    let mut g = Graph::new();
    let c = g.placeholder("c", DType::Bool, &[4, 1]).unwrap();
    let a = ph(&mut g, "a", &[4, 3]);
    let b = ph(&mut g, "b", &[3]);
    let sel = g.select(c, a, b).unwrap();
    let p = ph(&mut g, "p", &[6, 3, 2]);
    let idx = g.placeholder("idx", DType::I32, &[2, 4]).unwrap();
    let rows = g.gather(p, idx, 0).unwrap();
    let cols = g.gather(p, idx, 1).unwrap();
    let ids = g.placeholder("ids", DType::I32, &[5]).unwrap();
    let d = ph(&mut g, "d", &[5, 3]);
    let seg = g.unsorted_segment_sum(d, ids, 4).unwrap();
    assert_eq!(g.shape(rows), &[2, 4, 3, 2]);
    assert_eq!(g.shape(cols), &[6, 2, 4, 2]);
    let feeds = vec![
        (
            c,
            HostTensor::from_bool(&[4, 1], vec![true, false, false, true]).unwrap(),
        ),
        (a, rand_f32(&mut r, &[4, 3], -1.0, 1.0)),
        (b, rand_f32(&mut r, &[3], -1.0, 1.0)),
        (p, rand_f32(&mut r, &[6, 3, 2], -1.0, 1.0)),
        (
            idx,
            HostTensor::from_i32(&[2, 4], vec![0, 2, 1, 2, 1, 1, 0, 2]).unwrap(),
        ),
        // Id 9 is out of range: dropped, as TF drops negative ids.
        (
            ids,
            HostTensor::from_i32(&[5], vec![3, 0, 3, 9, 1]).unwrap(),
        ),
        (d, rand_f32(&mut r, &[5, 3], -1.0, 1.0)),
    ];
    check_against_reference(g, &feeds, &[sel, rows, cols, seg], 1e-6);
}

#[test]
fn gather_indices_out_of_range_are_invalid_argument_before_the_run() {
    let mut g = Graph::new();
    let p = ph(&mut g, "p", &[5, 2]);
    let idx = g.placeholder("idx", DType::I32, &[-1]).unwrap();
    let y = g.gather(p, idx, 0).unwrap();
    let v = g
        .variable("v", DType::F32, &[], wgtrain::Initializer::Zeros)
        .unwrap();
    let one = g.scalar(1.0).unwrap();
    let bump = g.assign_add(v, one).unwrap();
    let init = g.global_variables_initializer().unwrap();
    let Some(mut s) = gpu(g) else {
        return;
    };
    s.run(&[], &[], &[init]).unwrap();
    let pv = HostTensor::from_f32(&[5, 2], (0..10).map(|v| v as f32).collect()).unwrap();
    for bad in [vec![0, 5], vec![-1], vec![2, 1, 70]] {
        let n = bad.len();
        let e = s
            .run(
                &[
                    (p, pv.clone()),
                    (idx, HostTensor::from_i32(&[n], bad).unwrap()),
                ],
                &[y, bump],
                &[],
            )
            .unwrap_err();
        assert_eq!(e.code, Code::InvalidArgument, "{e}");
        assert!(e.message.contains("GatherV2"), "{e}");
    }
    // Nothing ran: the counter fetched with the bad gathers never moved.
    let ok = s
        .run(
            &[
                (p, pv),
                (idx, HostTensor::from_i32(&[2], vec![4, 0]).unwrap()),
            ],
            &[y, bump],
            &[],
        )
        .unwrap();
    assert_eq!(ok[0].as_f32().unwrap(), vec![8.0, 9.0, 0.0, 1.0]);
    assert_eq!(ok[1].as_f32().unwrap(), vec![1.0]);
    // Constant indices are checked when the run is planned.
    let mut g = Graph::new();
    let p = ph(&mut g, "p", &[3]);
    let c = g
        .constant(HostTensor::from_i32(&[1], vec![3]).unwrap(), "idx")
        .unwrap();
    let y = g.gather(p, c, 0).unwrap();
    let Some(mut s) = gpu(g) else {
        return;
    };
    let e = s
        .run(
            &[(p, HostTensor::from_f32(&[3], vec![1.0; 3]).unwrap())],
            &[y],
            &[],
        )
        .unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument);
}

#[test]
fn dropout_is_deterministic_per_step_and_matches_reference() {
    let mut g = Graph::new();
    g.set_seed(42);
    let x = ph(&mut g, "x", &[64, 33]);
    let step = g.placeholder("step", DType::I64, &[]).unwrap();
    let y = g.dropout(x, 0.3, step, Some(7)).unwrap();
    let ones = HostTensor::from_f32(&[64, 33], vec![1.0; 64 * 33]).unwrap();
    let run = |s: &mut wgtrain::Session, k: i64| {
        s.run(
            &[(x, ones.clone()), (step, HostTensor::scalar_i64(k))],
            &[y],
            &[],
        )
        .unwrap()
        .remove(0)
        .as_f32()
        .unwrap()
    };
    let feeds = vec![
        (x, ones.clone()),
        (step, HostTensor::scalar_i64(123_456_789_012)),
    ];
    check_against_reference(g.clone(), &feeds, &[y], 0.0);
    let Some(mut s) = gpu(g) else {
        return;
    };
    let a = run(&mut s, 5);
    assert_eq!(a, run(&mut s, 5));
    assert_ne!(a, run(&mut s, 6));
    let kept = a.iter().filter(|&&v| v != 0.0).count() as f64 / a.len() as f64;
    assert!((kept - 0.7).abs() < 0.05, "kept {kept}");
    let scale = 1.0 / 0.7f32;
    assert!(a.iter().all(|&v| v == 0.0 || (v - scale).abs() < 1e-6));
}

#[test]
fn bad_index_op_arguments_are_invalid_argument() {
    let mut g = Graph::new();
    let x = ph(&mut g, "x", &[4, 5]);
    let bad = [
        g.slice(x, &[0], &[1]).unwrap_err(),
        g.slice(x, &[3, 0], &[2, 5]).unwrap_err(),
        g.slice(x, &[-1, 0], &[1, 5]).unwrap_err(),
        // A negative size other than -1.
        g.slice(x, &[0, 0], &[-2, 5]).unwrap_err(),
        g.strided_slice(x, spec(&[0, 0], &[1, 1], &[1, 0], [0; 3]))
            .unwrap_err(),
        g.strided_slice(x, spec(&[7], &[8], &[1], [0, 0, 1]))
            .unwrap_err(),
        g.pad(x, &[[1, 1]], 0.0).unwrap_err(),
        g.tile(x, &[2]).unwrap_err(),
        g.concat(&[], 0).unwrap_err(),
        g.concat(&[x], 2).unwrap_err(),
        g.gather(x, x, 0).unwrap_err(),
        g.clip_by_value(x, 1.0, 0.0).unwrap_err(),
    ];
    let y = ph(&mut g, "y", &[4, 6]);
    let c = g.concat(&[x, y], 0).unwrap_err();
    let step = g.placeholder("s", DType::I64, &[]).unwrap();
    let d = g.dropout(x, 1.0, step, None).unwrap_err();
    for e in bad.iter().chain([&c, &d]) {
        assert_eq!(e.code, Code::InvalidArgument, "{e}");
    }
}

#[test]
fn clip_and_l2_loss_match_reference() {
    let mut r = rng(820);
    let mut g = Graph::new();
    let x = ph(&mut g, "x", &[7, 3]);
    let c = g.clip_by_value(x, -0.25, 0.5).unwrap();
    let l = g.l2_loss(x).unwrap();
    let feeds = vec![(x, rand_f32(&mut r, &[7, 3], -1.0, 1.0))];
    check_against_reference(g, &feeds, &[c, l], 1e-6);
}

#[test]
fn gather_of_device_computed_indices_reports_an_index_out_of_range() {
    let mut g = Graph::new();
    let p = ph(&mut g, "p", &[4, 2]);
    let f = ph(&mut g, "f", &[3]);
    // Indices computed on the device: a cast of a fed float.
    let idx = g.cast(f, DType::I32).unwrap();
    let y = g.gather(p, idx, 0).unwrap();
    let Some(mut s) = gpu(g) else {
        return;
    };
    let pv = HostTensor::from_f32(&[4, 2], (0..8).map(|v| v as f32).collect()).unwrap();
    let fv = |v: Vec<f32>| HostTensor::from_f32(&[3], v).unwrap();
    let ok = s
        .run(&[(p, pv.clone()), (f, fv(vec![3.0, 0.0, 1.0]))], &[y], &[])
        .unwrap();
    assert_eq!(ok[0].as_f32().unwrap(), vec![6.0, 7.0, 0.0, 1.0, 2.0, 3.0]);
    for bad in [vec![0.0, 4.0, 1.0], vec![-2.0, 1.0, 1.0]] {
        let e = s
            .run(&[(p, pv.clone()), (f, fv(bad))], &[y], &[])
            .unwrap_err();
        assert_eq!(e.code, Code::InvalidArgument, "{e}");
        assert!(e.message.contains("GatherV2"), "{e}");
    }
    // The status is cleared at every run: a good run after a bad one succeeds.
    s.run(&[(p, pv), (f, fv(vec![1.0, 1.0, 1.0]))], &[y], &[])
        .unwrap();
}
