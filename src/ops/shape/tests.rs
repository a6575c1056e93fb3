use super::*;
use crate::ir::{Dim, Graph, PadMode, known_shape};

fn t_f32(shape: &[usize], v: Vec<f32>) -> Tensor {
    Tensor::from_vec(shape.to_vec(), v)
}
fn t_i64(v: &[i64]) -> Tensor {
    Tensor::from_vec(vec![v.len()], v.to_vec())
}
fn iota(shape: &[usize]) -> Tensor {
    t_f32(shape, (0..crate::tensor::numel(shape)).map(|i| i as f32).collect())
}
fn run(op: Op, ins: &[Option<&Tensor>]) -> Vec<Tensor> {
    op.eval(ins).unwrap()
}
fn sym(s: &str) -> Dim {
    Dim::Sym(s.into())
}

#[test]
fn reshape_basic_and_errors() {
    let x = iota(&[2, 3, 4]);
    let y = &run(Op::Reshape { allowzero: false }, &[Some(&x), Some(&t_i64(&[0, -1]))])[0];
    assert_eq!(y.shape(), &[2, 12]);
    assert!(y.shares_storage(&x));
    let err = Op::Reshape { allowzero: false }.eval(&[Some(&iota(&[2, 3])), Some(&t_i64(&[4, 2]))]).unwrap_err();
    assert_eq!(err.to_string(), "cannot reshape [2,3] (6 elements) to [4,2] (8 elements)");
    let e = Op::Reshape { allowzero: false }.eval(&[Some(&iota(&[2, 3])), Some(&t_i64(&[-1, 4]))]);
    assert!(e.unwrap_err().to_string().contains("[2,3]"));
    let z = Tensor::zeros(DType::F32, vec![0, 3]);
    let y = &run(Op::Reshape { allowzero: true }, &[Some(&z), Some(&t_i64(&[3, 0]))])[0];
    assert_eq!(y.shape(), &[3, 0]);
}
