//! Resize against the ONNX backend node suite's expected arrays (test_resize_*, antialias
//! cases excluded), plus inference and dtype checks.

use super::*;
use crate::ir::known_shape;
use half::f16;

fn tf(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_vec(shape.to_vec(), v.to_vec())
}
fn ti(shape: &[usize], v: &[i64]) -> Tensor {
    Tensor::from_vec(shape.to_vec(), v.to_vec())
}

fn check(op: &Op, ins: Vec<Option<Tensor>>, want: &[Tensor]) {
    let facts: Vec<Option<Fact>> = ins.iter().map(|t| t.clone().map(Fact::konst)).collect();
    let fr: Vec<Option<&Fact>> = facts.iter().map(|f| f.as_ref()).collect();
    let inferred = op.infer(&fr).unwrap();
    let got = op.eval_owned(ins).unwrap();
    assert_eq!(got.len(), want.len());
    for ((g, w), f) in got.iter().zip(want).zip(&inferred) {
        assert_eq!(g.shape(), w.shape());
        assert_eq!(f.shape, known_shape(w.shape()));
        let (a, b) = (g.to_f64_vec(), w.to_f64_vec());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "element {i}: got {x}, want {y}\n{a:?}\n{b:?}");
        }
    }
}

fn nearest(coord: &str, nearest_mode: &str) -> Resize {
    Resize {
        mode: ResizeMode::Nearest,
        coord_mode: coord.into(),
        nearest_mode: nearest_mode.into(),
        cubic_coeff_a: -0.75,
        exclude_outside: false,
        extrapolation_value: 0.0,
        axes: vec![],
        aspect_policy: "stretch".into(),
    }
}

#[test]
fn nearest_keeps_integer_dtypes_and_symbolic_batch() {
    let op = Op::Resize(nearest("asymmetric", "floor"));
    let x = Tensor::from_vec(vec![1, 1, 2, 2], vec![1u8, 2, 3, 4]);
    let s = tf(&[4], &[1.0, 1.0, 2.0, 2.0]);
    let y = &op.eval(&[Some(&x), None, Some(&s)]).unwrap()[0];
    assert_eq!(y.shape(), &[1, 1, 4, 4]);
    assert_eq!(y.as_slice::<u8>().unwrap(), &[1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
    let fx = Fact::new(DType::F32, vec![Dim::Sym("N".into()), Dim::Known(3), Dim::Known(5), Dim::Unknown]);
    let fs = Fact::konst(s);
    let f = &op.infer(&[Some(&fx), None, Some(&fs)]).unwrap()[0];
    assert_eq!(f.shape, vec![Dim::Sym("N".into()), Dim::Known(3), Dim::Known(10), Dim::Unknown]);
}

#[test]
fn linear_rounds_integers_and_handles_empty() {
    let mut r = nearest("align_corners", "floor");
    r.mode = ResizeMode::Linear;
    let op = Op::Resize(r);
    let x = Tensor::from_vec(vec![1, 2], vec![0i32, 3]);
    let sizes = ti(&[2], &[1, 3]);
    let y = &op.eval(&[Some(&x), None, None, Some(&sizes)]).unwrap()[0];
    // 0, 1.5, 3 with round-half-to-even.
    assert_eq!(y.as_slice::<i32>().unwrap(), &[0, 2, 3]);
    let e = Tensor::zeros(DType::F32, vec![0, 2]);
    let y = &op.eval(&[Some(&e), None, None, Some(&ti(&[2], &[0, 4]))]).unwrap()[0];
    assert_eq!(y.shape(), &[0, 4]);
    let bad = op.eval(&[Some(&x), None, None, Some(&ti(&[1], &[3]))]).unwrap_err();
    assert!(bad.to_string().contains("[3]"), "{bad}");
}

#[test]
fn bilinear_f16_matches_f32() {
    let mut r = nearest("half_pixel", "floor");
    r.mode = ResizeMode::Linear;
    r.axes = vec![-2, -1];
    let op = Op::Resize(r);
    let v: Vec<f32> = (0..12).map(|i| (i * i) as f32 * 0.25).collect();
    let x32 = tf(&[1, 3, 4], &v);
    let x16 = Tensor::from_vec(vec![1, 3, 4], v.iter().map(|&x| f16::from_f32(x)).collect());
    let s = tf(&[2], &[1.5, 0.5]);
    let a = &op.eval(&[Some(&x32), None, Some(&s)]).unwrap()[0];
    let b = &op.eval(&[Some(&x16), None, Some(&s)]).unwrap()[0];
    assert_eq!(a.shape(), &[1, 4, 2]);
    assert_eq!(b.dtype(), DType::F16);
    for (x, y) in a.to_f64_vec().iter().zip(b.to_f64_vec()) {
        assert!((x - y).abs() < 0.02 * (1.0 + x.abs()), "{x} vs {y}");
    }
}

include!("node_cases.rs");
