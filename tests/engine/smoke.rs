use crate::common::*;
use wgtrain::{DType, Graph};

#[test]
fn add_matmul_softmax_on_gpu() {
    let mut r = rng(1);
    let mut g = Graph::new();
    let a = ph(&mut g, "a", &[7, 129]);
    let b = ph(&mut g, "b", &[129, 33]);
    let c = ph(&mut g, "c", &[33]);
    let m = g.matmul(a, b).unwrap();
    let s = g.add(m, c).unwrap();
    let sm = g.softmax(s).unwrap();
    let _ = DType::F32;
    let feeds = vec![
        (a, rand_f32(&mut r, &[7, 129], -1.0, 1.0)),
        (b, rand_f32(&mut r, &[129, 33], -1.0, 1.0)),
        (c, rand_f32(&mut r, &[33], -1.0, 1.0)),
    ];
    check_against_reference(g, &feeds, &[m, s, sm], F32_RTOL);
}
