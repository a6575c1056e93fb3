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
    let err =
        Op::Reshape { allowzero: false }.eval(&[Some(&iota(&[2, 3])), Some(&t_i64(&[4, 2]))]).unwrap_err();
    assert_eq!(err.to_string(), "cannot reshape [2,3] (6 elements) to [4,2] (8 elements)");
    let e = Op::Reshape { allowzero: false }.eval(&[Some(&iota(&[2, 3])), Some(&t_i64(&[-1, 4]))]);
    assert!(e.unwrap_err().to_string().contains("[2,3]"));
    let z = Tensor::zeros(DType::F32, vec![0, 3]);
    let y = &run(Op::Reshape { allowzero: true }, &[Some(&z), Some(&t_i64(&[3, 0]))])[0];
    assert_eq!(y.shape(), &[3, 0]);
}

fn infer1(op: Op, ins: &[Option<&Fact>]) -> Fact {
    op.infer(ins).unwrap().remove(0)
}

#[test]
fn reshape_symbolic_inference() {
    let x = Fact::new(DType::F32, vec![sym("N"), Dim::Known(16), Dim::Known(4), Dim::Known(4)]);
    let s = Fact::konst(t_i64(&[-1, 256]));
    assert_eq!(
        infer1(Op::Reshape { allowzero: false }, &[Some(&x), Some(&s)]).shape,
        vec![sym("N"), Dim::Known(256)]
    );
    let s = Fact::konst(t_i64(&[0, -1]));
    assert_eq!(
        infer1(Op::Reshape { allowzero: false }, &[Some(&x), Some(&s)]).shape,
        vec![sym("N"), Dim::Known(256)]
    );
    let s = Fact::konst(t_i64(&[-1, 8]));
    assert_eq!(
        infer1(Op::Reshape { allowzero: false }, &[Some(&x), Some(&s)]).shape,
        vec![Dim::Unknown, Dim::Known(8)]
    );
    let s = Fact::new(DType::I64, vec![Dim::Known(3)]);
    assert_eq!(infer1(Op::Reshape { allowzero: false }, &[Some(&x), Some(&s)]).shape, vec![Dim::Unknown; 3]);
    let s = Fact::konst(t_i64(&[-1, 7]));
    let e = Op::Reshape { allowzero: false }
        .infer(&[Some(&Fact::new(DType::F32, known_shape(&[2, 3]))), Some(&s)]);
    assert!(e.unwrap_err().to_string().contains("[2,3]"));
}

#[test]
fn pytorch_shape_chain_folds_or_stays_symbolic() {
    // Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as PyTorch exports flatten.
    for (dims, want) in [
        (known_shape(&[2, 3, 4]), vec![Dim::Known(2), Dim::Known(12)]),
        (vec![sym("N"), Dim::Known(3), Dim::Known(4)], vec![Dim::Unknown, Dim::Unknown]),
    ] {
        let mut g = Graph::new();
        let x = g.add_input("x", DType::F32, dims.clone());
        let sh = g.add_node("shape", Op::Shape { start: 0, end: None }, vec![Some(x)]).unwrap()[0];
        let zero = g.add_const("zero", Tensor::scalar(0i64));
        let n = g.add_node("g", Op::Gather { axis: 0 }, vec![Some(sh), Some(zero)]).unwrap()[0];
        assert_eq!(g.fact(n).shape, vec![]);
        let ax = g.add_const("ax", t_i64(&[0]));
        let n1 = g.add_node("u", Op::Unsqueeze, vec![Some(n), Some(ax)]).unwrap()[0];
        let m1 = g.add_const("m1", t_i64(&[-1]));
        let cat = g.add_node("c", Op::Concat { axis: 0 }, vec![Some(n1), Some(m1)]).unwrap()[0];
        let y = g.add_node("r", Op::Reshape { allowzero: false }, vec![Some(x), Some(cat)]).unwrap()[0];
        assert_eq!(g.fact(y).shape, want);
        let konst = g.fact(sh).konst.is_some();
        assert_eq!(konst, dims.iter().all(|d| d.known().is_some()));
    }
}

#[test]
fn shape_size_of_symbolic_are_not_constant() {
    let x = Fact::new(DType::F32, vec![sym("N"), Dim::Known(3), Dim::Known(5)]);
    let f = infer1(Op::Shape { start: 0, end: None }, &[Some(&x)]);
    assert!(f.konst.is_none());
    assert_eq!((f.dtype, f.shape), (DType::I64, vec![Dim::Known(3)]));
    let f = infer1(Op::Shape { start: 1, end: None }, &[Some(&x)]);
    assert_eq!(f.konst.unwrap().as_slice::<i64>().unwrap(), &[3, 5]);
    assert!(infer1(Op::Size, &[Some(&x)]).konst.is_none());
    let y = &run(Op::Shape { start: -2, end: Some(-1) }, &[Some(&iota(&[2, 3, 4]))])[0];
    assert_eq!(y.as_slice::<i64>().unwrap(), &[3]);
}

#[test]
fn flatten_squeeze_unsqueeze_share_storage() {
    let x = iota(&[2, 1, 3, 1]);
    let y = &run(Op::Flatten { axis: -2 }, &[Some(&x)])[0];
    assert_eq!(y.shape(), &[2, 3]);
    assert!(y.shares_storage(&x));
    let y = &run(Op::Squeeze, &[Some(&x)])[0];
    assert_eq!(y.shape(), &[2, 3]);
    let y = &run(Op::Squeeze, &[Some(&x), Some(&t_i64(&[-1]))])[0];
    assert_eq!(y.shape(), &[2, 1, 3]);
    assert!(y.shares_storage(&x));
    assert!(Op::Squeeze.eval(&[Some(&x), Some(&t_i64(&[0]))]).unwrap_err().to_string().contains("[2,1,3,1]"));
    let y = &run(Op::Unsqueeze, &[Some(&x), Some(&t_i64(&[-1, 0]))])[0];
    assert_eq!(y.shape(), &[1, 2, 1, 3, 1, 1]);
    assert!(y.shares_storage(&x));
    let fx = Fact::new(DType::F32, vec![sym("N"), Dim::Known(3)]);
    assert_eq!(infer1(Op::Flatten { axis: 1 }, &[Some(&fx)]).shape, vec![sym("N"), Dim::Known(3)]);
    assert_eq!(infer1(Op::Flatten { axis: 2 }, &[Some(&fx)]).shape, vec![Dim::Unknown, Dim::Known(1)]);
    assert_eq!(infer1(Op::Flatten { axis: 0 }, &[Some(&fx)]).shape, vec![Dim::Known(1), Dim::Unknown]);
    let ax = Fact::konst(t_i64(&[1]));
    assert_eq!(
        infer1(Op::Unsqueeze, &[Some(&fx), Some(&ax)]).shape,
        vec![sym("N"), Dim::Known(1), Dim::Known(3)]
    );
    let d = &run(Op::Dropout { ratio: 0.3 }, &[Some(&x)])[0];
    assert!(d.shares_storage(&x));
}

/// Slow reference transpose by coordinates.
fn transpose_ref(x: &Tensor, perm: &[usize]) -> Vec<f32> {
    let s = x.shape();
    let st = crate::tensor::strides(s);
    let od: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
    let n = crate::tensor::numel(&od);
    let v = x.f32s().unwrap();
    (0..n)
        .map(|mut i| {
            let mut off = 0;
            for j in (0..od.len()).rev() {
                off += (i % od[j]) * st[perm[j]];
                i /= od[j];
            }
            v[off]
        })
        .collect()
}

#[test]
fn transpose_all_paths_match_reference() {
    for (shape, perm) in [
        (vec![2, 3, 4], vec![0, 2, 1]),
        (vec![2, 3, 4], vec![2, 0, 1]),
        (vec![2, 3, 4], vec![1, 0, 2]),
        (vec![40, 70], vec![1, 0]),
        (vec![3, 1, 5, 2], vec![3, 2, 1, 0]),
        (vec![2, 33, 35, 3], vec![0, 3, 1, 2]),
        (vec![2, 0, 3], vec![2, 1, 0]),
    ] {
        let x = iota(&shape);
        let y = &run(Op::Transpose { perm: Some(perm.clone()) }, &[Some(&x)])[0];
        assert_eq!(y.f32s().unwrap(), transpose_ref(&x, &perm).as_slice(), "{shape:?} {perm:?}");
    }
    let b = Tensor::from_vec(vec![2, 2], vec![true, false, false, false]);
    let y = &run(Op::Transpose { perm: None }, &[Some(&b)])[0];
    assert_eq!(y.as_slice::<bool>().unwrap(), &[true, false, false, false]);
    assert!(Op::Transpose { perm: Some(vec![0, 0]) }.eval(&[Some(&b)]).is_err());
}

#[test]
fn concat_split_roundtrip_and_infer() {
    let a = iota(&[2, 1, 3]);
    let b = t_f32(&[2, 2, 3], (100..112).map(|i| i as f32).collect());
    let c = &run(Op::Concat { axis: -2 }, &[Some(&a), Some(&b)])[0];
    assert_eq!(c.shape(), &[2, 3, 3]);
    assert_eq!(&c.f32s().unwrap()[..9], &[0., 1., 2., 100., 101., 102., 103., 104., 105.]);
    let parts = run(Op::Split { axis: 1, num_outputs: 2 }, &[Some(c), Some(&t_i64(&[1, 2]))]);
    assert_eq!(parts[0], a);
    assert_eq!(parts[1], b);
    let even = run(Op::Split { axis: 0, num_outputs: 3 }, &[Some(&iota(&[7]))]);
    let lens: Vec<usize> = even.iter().map(|t| t.len()).collect();
    assert_eq!(lens, vec![3, 3, 1]);
    let e = Op::Concat { axis: 0 }.eval(&[Some(&a), Some(&iota(&[2, 2, 2]))]).unwrap_err();
    assert!(e.to_string().contains("[2, 1, 3]"), "{e}");
    let fa = Fact::new(DType::F32, vec![sym("N"), Dim::Known(3)]);
    let fb = Fact::new(DType::F32, vec![sym("N"), Dim::Known(5)]);
    assert_eq!(infer1(Op::Concat { axis: 1 }, &[Some(&fa), Some(&fb)]).shape, vec![sym("N"), Dim::Known(8)]);
    let sp = Op::Split { axis: 0, num_outputs: 2 }.infer(&[Some(&fa)]).unwrap();
    assert_eq!(sp[1].shape, vec![Dim::Unknown, Dim::Known(3)]);
}

#[test]
fn slice_clamps_and_negative_steps() {
    let x = iota(&[3, 5]);
    let s = |st: &[i64], en: &[i64], ax: &[i64], sp: &[i64]| {
        run(Op::Slice, &[Some(&x), Some(&t_i64(st)), Some(&t_i64(en)), Some(&t_i64(ax)), Some(&t_i64(sp))])
            .remove(0)
    };
    let y = s(&[i64::MAX], &[i64::MIN], &[1], &[-1]);
    assert_eq!(y.shape(), &[3, 5]);
    assert_eq!(&y.f32s().unwrap()[..5], &[4., 3., 2., 1., 0.]);
    let y = s(&[-1, 1], &[-4, i64::MAX], &[-2, 1], &[-2, 2]);
    assert_eq!(y.f32s().unwrap(), &[11., 13., 1., 3.]);
    let y = s(&[10], &[20], &[0], &[1]);
    assert_eq!(y.shape(), &[0, 5]);
    assert!(
        Op::Slice
            .eval(&[Some(&x), Some(&t_i64(&[0])), Some(&t_i64(&[1])), None, Some(&t_i64(&[0]))])
            .is_err()
    );
    let fx = Fact::new(DType::F32, vec![sym("N"), Dim::Known(5)]);
    let k = |v: &[i64]| Fact::konst(t_i64(v));
    let (st, en, ax) = (k(&[0, 1]), k(&[i64::MAX, -1]), k(&[0, 1]));
    let f = infer1(Op::Slice, &[Some(&fx), Some(&st), Some(&en), Some(&ax)]);
    assert_eq!(f.shape, vec![sym("N"), Dim::Known(3)]);
}

#[test]
fn gather_and_gather_elements() {
    let x = iota(&[3, 4]);
    let y = &run(Op::Gather { axis: 1 }, &[Some(&x), Some(&Tensor::from_vec(vec![2], vec![-1i32, 0]))])[0];
    assert_eq!(y.f32s().unwrap(), &[3., 0., 7., 4., 11., 8.]);
    let y = &run(Op::Gather { axis: 0 }, &[Some(&x), Some(&Tensor::scalar(2i64))])[0];
    assert_eq!(y.shape(), &[4]);
    assert_eq!(y.f32s().unwrap(), &[8., 9., 10., 11.]);
    let e = Op::Gather { axis: 0 }.eval(&[Some(&x), Some(&Tensor::scalar(3i64))]).unwrap_err();
    assert!(e.to_string().contains("index 3"), "{e}");
    let idx = Tensor::from_vec(vec![2, 2], vec![0i64, -1, 2, 1]);
    let y = &run(Op::GatherElements { axis: 1 }, &[Some(&x), Some(&idx)])[0];
    assert_eq!(y.f32s().unwrap(), &[0., 3., 6., 5.]);
    let y = &run(Op::Gather { axis: 0 }, &[Some(&x), Some(&Tensor::from_vec(vec![0], Vec::<i64>::new()))])[0];
    assert_eq!(y.shape(), &[0, 4]);
}

#[test]
fn expand_tile_constant_range() {
    let x = t_f32(&[3, 1], vec![1., 2., 3.]);
    let y = &run(Op::Expand, &[Some(&x), Some(&t_i64(&[2, 1, 2]))])[0];
    assert_eq!(y.shape(), &[2, 3, 2]);
    assert_eq!(y.f32s().unwrap(), &[1., 1., 2., 2., 3., 3., 1., 1., 2., 2., 3., 3.]);
    let y = &run(Op::Tile, &[Some(&x), Some(&t_i64(&[2, 2]))])[0];
    assert_eq!(y.shape(), &[6, 2]);
    assert_eq!(y.f32s().unwrap(), &[1., 1., 2., 2., 3., 3., 1., 1., 2., 2., 3., 3.]);
    let c = &run(Op::ConstantOfShape(Tensor::from_vec(vec![1], vec![7i32])), &[Some(&t_i64(&[2, 0]))])[0];
    assert_eq!((c.dtype(), c.shape()), (DType::I32, &[2usize, 0][..]));
    let r = &run(
        Op::Range,
        &[Some(&Tensor::scalar(10i32)), Some(&Tensor::scalar(1i32)), Some(&Tensor::scalar(-3i32))],
    )[0];
    assert_eq!(r.as_slice::<i32>().unwrap(), &[10, 7, 4]);
    let r = &run(
        Op::Range,
        &[Some(&Tensor::scalar(0.5f64)), Some(&Tensor::scalar(1.6f64)), Some(&Tensor::scalar(0.5f64))],
    )[0];
    assert_eq!(r.as_slice::<f64>().unwrap(), &[0.5, 1.0, 1.5]);
    let fx = Fact::new(DType::F32, vec![sym("N"), Dim::Known(1)]);
    let sh = Fact::konst(t_i64(&[1, 4]));
    assert_eq!(infer1(Op::Expand, &[Some(&fx), Some(&sh)]).shape, vec![sym("N"), Dim::Known(4)]);
}

#[test]
fn pad_modes_match_numpy() {
    // np.pad(np.arange(4).reshape(1,4), ((0,0),(3,2)), mode=...)
    let x = Tensor::from_vec(vec![1, 4], vec![0i64, 1, 2, 3]);
    let pads = t_i64(&[0, 3, 0, 2]);
    let cases = [
        (PadMode::Constant, vec![9, 9, 9, 0, 1, 2, 3, 9, 9]),
        (PadMode::Reflect, vec![3, 2, 1, 0, 1, 2, 3, 2, 1]),
        (PadMode::Edge, vec![0, 0, 0, 0, 1, 2, 3, 3, 3]),
        (PadMode::Wrap, vec![1, 2, 3, 0, 1, 2, 3, 0, 1]),
    ];
    for (mode, want) in cases {
        let y = &run(Op::Pad(mode), &[Some(&x), Some(&pads), Some(&Tensor::scalar(9i64))])[0];
        assert_eq!(y.as_slice::<i64>().unwrap(), want.as_slice(), "{mode:?}");
    }
    // Negative pads crop; axes select which axes the pads refer to.
    let y = &run(
        Op::Pad(PadMode::Constant),
        &[Some(&iota(&[2, 4])), Some(&t_i64(&[-1, 1])), None, Some(&t_i64(&[-1]))],
    )[0];
    assert_eq!(y.f32s().unwrap(), &[1., 2., 3., 0., 5., 6., 7., 0.]);
    let y = &run(
        Op::Pad(PadMode::Constant),
        &[Some(&Tensor::zeros(DType::F32, vec![0, 2])), Some(&t_i64(&[1, 0, 0, 0]))],
    )[0];
    assert_eq!(y.shape(), &[1, 2]);
    let fx = Fact::new(DType::F32, vec![sym("N"), Dim::Known(4)]);
    let p = Fact::konst(t_i64(&[0, 1, 0, 1]));
    assert_eq!(infer1(Op::Pad(PadMode::Edge), &[Some(&fx), Some(&p)]).shape, vec![sym("N"), Dim::Known(6)]);
}
