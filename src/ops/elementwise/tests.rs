use super::*;
use crate::ir::{Unary, binary_name, unary_name};
use half::f16;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn run(op: Op, xs: &[Tensor]) -> Result<Tensor> {
    let ins: Vec<Option<&Tensor>> = xs.iter().map(Some).collect();
    Ok(op.eval(&ins)?.remove(0))
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.as_slice::<f32>().unwrap().to_vec()
}

/// Flat index into `shape` for an output multi-index, with numpy broadcasting.
fn bidx(oidx: &[usize], shape: &[usize]) -> usize {
    let off = oidx.len() - shape.len();
    shape.iter().enumerate().fold(0, |acc, (d, &n)| acc * n + if n == 1 { 0 } else { oidx[off + d] })
}

fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    idx
}

fn rand_shape(rng: &mut StdRng, rank: usize, max: usize) -> Vec<usize> {
    (0..rank).map(|_| rng.random_range(1..=max)).collect()
}

/// A shape that broadcasts to `out`: a random suffix with random dims set to 1.
fn sub_shape(rng: &mut StdRng, out: &[usize]) -> Vec<usize> {
    let r = rng.random_range(0..=out.len());
    out[out.len() - r..].iter().map(|&d| if rng.random_bool(0.4) { 1 } else { d }).collect()
}

fn rand_f32(rng: &mut StdRng, shape: &[usize], lo: f32, hi: f32) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(shape.to_vec(), (0..n).map(|_| rng.random_range(lo..hi)).collect::<Vec<f32>>())
}

fn unary_ref(u: Unary, x: f64) -> f64 {
    use Unary::*;
    let sp = |x: f64| (1.0 + x.exp()).ln();
    match u {
        Relu => x.max(0.0),
        Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Tanh => x.tanh(),
        Erf => math::erf_f64(x),
        Exp => x.exp(),
        Log => x.ln(),
        Sqrt => x.sqrt(),
        Neg => -x,
        Abs => x.abs(),
        Floor => x.floor(),
        Ceil => x.ceil(),
        Round => x.round_ties_even(),
        Reciprocal => 1.0 / x,
        Sin => x.sin(),
        Cos => x.cos(),
        Tan => x.tan(),
        Asin => x.asin(),
        Acos => x.acos(),
        Atan => x.atan(),
        Sinh => x.sinh(),
        Cosh => x.cosh(),
        Asinh => x.asinh(),
        Acosh => x.acosh(),
        Atanh => x.atanh(),
        Sign => x.signum() * (x != 0.0) as u8 as f64,
        Softplus => sp(x),
        Softsign => x / (1.0 + x.abs()),
        HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
        Mish => x * sp(x).tanh(),
        Gelu { tanh: false } => 0.5 * x * (1.0 + math::erf_f64(x / 2f64.sqrt())),
        Gelu { tanh: true } => {
            0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
        }
        LeakyRelu(a) => {
            if x < 0.0 {
                a as f64 * x
            } else {
                x
            }
        }
        Elu(a) => {
            if x < 0.0 {
                a as f64 * (x.exp() - 1.0)
            } else {
                x
            }
        }
        Celu(a) => x.max(0.0) + (a as f64 * ((x / a as f64).exp() - 1.0)).min(0.0),
        ThresholdedRelu(a) => {
            if x > a as f64 {
                x
            } else {
                0.0
            }
        }
        Selu { alpha, gamma } => {
            let (a, g) = (alpha as f64, gamma as f64);
            if x > 0.0 { g * x } else { g * (a * x.exp() - a) }
        }
        HardSigmoid { alpha, beta } => (alpha as f64 * x + beta as f64).clamp(0.0, 1.0),
        IsNaN | IsInf { .. } | Not => unreachable!(),
    }
}

#[test]
fn every_float_unary_matches_f64_math() {
    use Unary::*;
    let mut rng = StdRng::seed_from_u64(1);
    let mut bad = Vec::new();
    let ops = [
        Relu,
        Sigmoid,
        Tanh,
        Erf,
        Exp,
        Log,
        Sqrt,
        Neg,
        Abs,
        Floor,
        Ceil,
        Round,
        Reciprocal,
        Sin,
        Cos,
        Tan,
        Asin,
        Acos,
        Atan,
        Sinh,
        Cosh,
        Asinh,
        Acosh,
        Atanh,
        Sign,
        Softplus,
        Softsign,
        HardSwish,
        Mish,
        Gelu { tanh: false },
        Gelu { tanh: true },
        LeakyRelu(0.1),
        Elu(0.7),
        Celu(1.5),
        ThresholdedRelu(0.5),
        Selu { alpha: 1.67, gamma: 1.05 },
        HardSigmoid { alpha: 0.2, beta: 0.5 },
    ];
    for u in ops {
        let (lo, hi) = match u {
            Log | Sqrt => (0.01, 50.0),
            Asin | Acos | Atanh => (-0.99, 0.99),
            Acosh => (1.0, 20.0),
            Exp | Sinh | Cosh => (-20.0, 20.0),
            _ => (-8.0, 8.0),
        };
        // Large enough to take the parallel path.
        let x = rand_f32(&mut rng, &[3, 30_000], lo, hi);
        let xs = f32s(&x);
        let y = run(Op::Unary(u), std::slice::from_ref(&x)).unwrap();
        for (&a, &b) in xs.iter().zip(f32s(&y).iter()) {
            let want = unary_ref(u, a as f64);
            if (b as f64 - want).abs() > 2e-6 * want.abs().max(1.0) {
                bad.push(format!("{}: f({a}) = {b}, want {want}", unary_name(u)));
                break;
            }
        }
        let x64 = x.cast(DType::F64);
        let y64 = run(Op::Unary(u), std::slice::from_ref(&x64)).unwrap();
        for (&a, &b) in x64.as_slice::<f64>().unwrap().iter().zip(y64.as_slice::<f64>().unwrap()) {
            let want = unary_ref(u, a);
            if (b - want).abs() > 1e-12 * want.abs().max(1.0) {
                bad.push(format!("{} f64: f({a}) = {b}, want {want}", unary_name(u)));
                break;
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn unary_special_cases() {
    let x = Tensor::from_vec(vec![6], vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -1.0, 0.0, 2.5]);
    let nan = run(Op::Unary(Unary::IsNaN), std::slice::from_ref(&x)).unwrap();
    assert_eq!(nan.as_slice::<bool>().unwrap(), &[true, false, false, false, false, false]);
    let inf = run(Op::Unary(Unary::IsInf { neg: true, pos: false }), std::slice::from_ref(&x)).unwrap();
    assert_eq!(inf.as_slice::<bool>().unwrap(), &[false, false, true, false, false, false]);
    let r = run(Op::Unary(Unary::Round), std::slice::from_ref(&x)).unwrap();
    assert_eq!(f32s(&r)[3..], [-1.0, 0.0, 2.0]);
    let s = run(Op::Unary(Unary::Sigmoid), &[Tensor::from_vec(vec![2], vec![-1000.0f32, 1000.0])]).unwrap();
    assert!(f32s(&s)[0] < 1e-38 && f32s(&s)[1] == 1.0);
    let i = Tensor::from_vec(vec![4], vec![-3i32, 0, 5, i32::MIN]);
    assert_eq!(
        run(Op::Unary(Unary::Abs), std::slice::from_ref(&i)).unwrap().as_slice::<i32>().unwrap(),
        &[3, 0, 5, i32::MIN]
    );
    assert_eq!(
        run(Op::Unary(Unary::Neg), std::slice::from_ref(&i)).unwrap().as_slice::<i32>().unwrap(),
        &[3, 0, -5, i32::MIN]
    );
    assert_eq!(
        run(Op::Unary(Unary::Sign), std::slice::from_ref(&i)).unwrap().as_slice::<i32>().unwrap(),
        &[-1, 0, 1, -1]
    );
    assert_eq!(run(Op::Unary(Unary::Not), &[i]).unwrap().as_slice::<i32>().unwrap(), &[2, -1, -6, i32::MAX]);
    let b = Tensor::from_vec(vec![2], vec![true, false]);
    assert_eq!(run(Op::Unary(Unary::Not), &[b]).unwrap().as_slice::<bool>().unwrap(), &[false, true]);
    // f16 round trip through f32.
    let h = Tensor::from_vec(vec![2], vec![f16::from_f32(1.0), f16::from_f32(-2.0)]);
    let e = run(Op::Unary(Unary::Exp), &[h]).unwrap();
    assert_eq!(
        e.as_slice::<f16>().unwrap(),
        &[f16::from_f32(std::f32::consts::E), f16::from_f32((-2f32).exp())]
    );
    assert!(run(Op::Unary(Unary::Sigmoid), &[Tensor::from_vec(vec![1], vec![1i32])]).is_err());
}

#[test]
fn in_place_reuses_the_buffer() {
    let x = Tensor::from_vec(vec![4], vec![-1.0f32, 2.0, -3.0, 4.0]);
    let ptr = x.f32s().unwrap().as_ptr();
    let y = Op::Unary(Unary::Relu).eval_owned(vec![Some(x)]).unwrap().remove(0);
    assert_eq!(y.f32s().unwrap().as_ptr(), ptr);
    assert_eq!(f32s(&y), [0.0, 2.0, 0.0, 4.0]);
    // The second operand's buffer is reused when the first cannot be.
    let a = Tensor::from_vec(vec![2], vec![1.0f32, 2.0]);
    let b = Tensor::from_vec(vec![3, 2], vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let ptr = b.f32s().unwrap().as_ptr();
    let y = Op::Binary(Binary::Sub).eval_owned(vec![Some(a), Some(b)]).unwrap().remove(0);
    assert_eq!(y.f32s().unwrap().as_ptr(), ptr);
    assert_eq!(f32s(&y), [0.0, 0.0, -2.0, -2.0, -4.0, -4.0]);
    // A shared input is left untouched.
    let x = Tensor::from_vec(vec![2], vec![-1.0f32, 1.0]);
    let keep = x.clone();
    run(Op::Unary(Unary::Relu), &[x]).unwrap();
    assert_eq!(f32s(&keep), [-1.0, 1.0]);
}

fn check_binary_f32(rng: &mut StdRng, op: Binary, osh: &[usize]) {
    let (ash, bsh) = if rng.random_bool(0.5) {
        (osh.to_vec(), sub_shape(rng, osh))
    } else {
        (sub_shape(rng, osh), sub_shape(rng, osh))
    };
    let (ash, bsh) = if rng.random_bool(0.5) { (bsh, ash) } else { (ash, bsh) };
    let a = rand_f32(rng, &ash, -3.0, 3.0);
    let b = rand_f32(rng, &bsh, 0.5, 3.0);
    let Some(want_shape) = broadcast_concrete(&[&ash, &bsh]) else { return };
    let (av, bv) = (f32s(&a), f32s(&b));
    // Pass unshared copies half the time so that the in-place paths run too.
    let ins = if rng.random_bool(0.5) { vec![a.clone(), b.clone()] } else { vec![a, b] };
    let y = run(Op::Binary(op), &ins).unwrap();
    assert_eq!(y.shape(), want_shape.as_slice());
    let yv = f32s(&y);
    for (i, &got) in yv.iter().enumerate() {
        let idx = unravel(i, &want_shape);
        let (x1, x2) = (av[bidx(&idx, &ash)], bv[bidx(&idx, &bsh)]);
        let want = match op {
            Binary::Add => x1 + x2,
            Binary::Sub => x1 - x2,
            Binary::Mul => x1 * x2,
            Binary::Div => x1 / x2,
            Binary::PRelu => {
                if x1 < 0.0 {
                    x1 * x2
                } else {
                    x1
                }
            }
            _ => unreachable!(),
        };
        assert_eq!(got, want, "{} {ash:?} {bsh:?} at {idx:?}", binary_name(op));
    }
}

#[test]
fn broadcasting_matches_naive_reference() {
    let mut rng = StdRng::seed_from_u64(2);
    for _ in 0..300 {
        let rank = rng.random_range(0..=4);
        let osh = rand_shape(&mut rng, rank, 5);
        let op = [Binary::Add, Binary::Sub, Binary::Mul, Binary::Div, Binary::PRelu][rng.random_range(0..5)];
        check_binary_f32(&mut rng, op, &osh);
    }
    // Big shapes exercise the parallel chunking across row boundaries.
    for osh in [vec![3, 70_001], vec![2, 3, 11_117], vec![70_000, 3], vec![5, 4, 3, 2_000]] {
        for op in [Binary::Add, Binary::Div] {
            check_binary_f32(&mut rng, op, &osh);
        }
    }
}

#[test]
fn integer_semantics() {
    let i = |v: &[i32]| Tensor::from_vec(vec![v.len()], v.to_vec());
    let get = |t: Tensor| t.as_slice::<i32>().unwrap().to_vec();
    let (a, b) = (i(&[-3, 3, -3, 3, 7, i32::MIN]), i(&[2, 2, -2, -2, 0, -1]));
    assert_eq!(
        get(run(Op::Binary(Binary::Div), &[a.clone(), b.clone()]).unwrap()),
        [-1, 1, 1, -1, 0, i32::MIN]
    );
    // Mod cases from the ONNX node tests (test_mod_mixed_sign_int*, test_mod_int64_fmod).
    let (a, b) = (i(&[-4, 7, 5, 4, -7, 8]), i(&[2, -3, 8, -2, 3, 5]));
    assert_eq!(
        get(run(Op::Binary(Binary::Mod { fmod: false }), &[a.clone(), b.clone()]).unwrap()),
        [0, -2, 5, 0, 2, 3]
    );
    assert_eq!(get(run(Op::Binary(Binary::Mod { fmod: true }), &[a, b]).unwrap()), [0, 1, 5, 0, -1, 3]);
    let p = run(Op::Binary(Binary::Pow), &[i(&[1, 2, 3]), Tensor::from_vec(vec![3], vec![4.0f32, 5.0, 6.0])])
        .unwrap();
    assert_eq!(get(p), [1, 32, 729]);
    let p = run(
        Op::Binary(Binary::Pow),
        &[Tensor::from_vec(vec![3], vec![1i64, 2, 3]), Tensor::from_vec(vec![3], vec![4i64, 5, 6])],
    );
    assert_eq!(p.unwrap().as_slice::<i64>().unwrap(), &[1, 32, 729]);
    let p = run(
        Op::Binary(Binary::Pow),
        &[Tensor::from_vec(vec![2], vec![2f32, 3.0]), Tensor::from_vec(vec![1], vec![3i64])],
    );
    assert_eq!(f32s(&p.unwrap()), [8.0, 27.0]);
    let p =
        run(Op::Binary(Binary::Pow), &[Tensor::from_vec(vec![2], vec![2f32, 9.0]), Tensor::scalar(0.5f32)]);
    assert_eq!(f32s(&p.unwrap()), [2f32.sqrt(), 3.0]);
    // BitShift cases from test_bitshift_*_int8_* (negative shifts, shifts >= width, overflow).
    let i8t = |v: &[i8]| Tensor::from_vec(vec![v.len()], v.to_vec());
    let sh = |op, a: &[i8], b: &[i8]| {
        run(Op::Binary(op), &[i8t(a), i8t(b)]).unwrap().as_slice::<i8>().unwrap().to_vec()
    };
    assert_eq!(sh(Binary::BitShiftLeft, &[-8, 4, -1], &[-1, -8, -16]), [0, 0, 0]);
    assert_eq!(sh(Binary::BitShiftLeft, &[64, 1, -64], &[1, 7, 1]), [-128, -128, -128]);
    assert_eq!(sh(Binary::BitShiftRight, &[-8, -1, -128], &[1, 1, 1]), [-4, -1, -64]);
    assert_eq!(sh(Binary::BitShiftRight, &[-8, 4, -1], &[8, 9, 127]), [-1, 0, -1]);
    assert_eq!(sh(Binary::BitShiftRight, &[-8, 4, -1], &[-1, -8, -16]), [-1, 0, -1]);
    let u = |v: &[u8]| Tensor::from_vec(vec![v.len()], v.to_vec());
    let r = run(Op::Binary(Binary::BitShiftLeft), &[u(&[16, 4, 1]), u(&[1, 2, 3])]).unwrap();
    assert_eq!(r.as_slice::<u8>().unwrap(), &[32, 16, 8]);
    let r = run(Op::Binary(Binary::BitwiseXor), &[u(&[0b1100]), u(&[0b1010])]).unwrap();
    assert_eq!(r.as_slice::<u8>().unwrap(), &[0b0110]);
    let r = run(Op::Binary(Binary::Sub), &[u(&[1]), u(&[2])]).unwrap();
    assert_eq!(r.as_slice::<u8>().unwrap(), &[255]);
}

#[test]
fn float_mod_edge_cases() {
    // test_mod_float_edge_cases_fmod_0_float32 from the ONNX node tests.
    let inf = f32::INFINITY;
    let a = [0.0, -0.0, 0.0, -0.0, -3.0, 3.0, -1.0, 1.0, inf, -inf, 1.0, 1.0];
    let b = [-2.0, 2.0, 2.0, -2.0, inf, inf, -inf, -inf, 2.0, 2.0, 0.0, -0.0];
    let want = [-0.0, 0.0, 0.0, -0.0, inf, 3.0, -1.0, -inf, f32::NAN, f32::NAN, f32::NAN, f32::NAN];
    let t = |v: &[f32]| Tensor::from_vec(vec![v.len()], v.to_vec());
    let y = f32s(&run(Op::Binary(Binary::Mod { fmod: false }), &[t(&a), t(&b)]).unwrap());
    for (g, w) in y.iter().zip(want) {
        assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "{y:?}");
    }
    let y = f32s(
        &run(Op::Binary(Binary::Mod { fmod: true }), &[t(&[-4.3, 7.2, 5.0]), t(&[2.1, -3.4, 8.0])]).unwrap(),
    );
    assert_eq!(y, [-4.3f32 % 2.1, 7.2f32 % -3.4, 5.0]);
}

#[test]
fn comparisons_and_logic() {
    let a = Tensor::from_vec(vec![2, 2], vec![1.0f32, 2.0, 3.0, f32::NAN]);
    let b = Tensor::from_vec(vec![2], vec![2.0f32, 2.0]);
    let get = |op| run(Op::Binary(op), &[a.clone(), b.clone()]).unwrap().as_slice::<bool>().unwrap().to_vec();
    assert_eq!(get(Binary::Less), [true, false, false, false]);
    assert_eq!(get(Binary::GreaterOrEqual), [false, true, true, false]);
    assert_eq!(get(Binary::Equal), [false, true, false, false]);
    let p = Tensor::from_vec(vec![2, 2], vec![true, true, false, false]);
    let q = Tensor::from_vec(vec![2], vec![true, false]);
    let get = |op| run(Op::Binary(op), &[p.clone(), q.clone()]).unwrap().as_slice::<bool>().unwrap().to_vec();
    assert_eq!(get(Binary::And), [true, false, false, false]);
    assert_eq!(get(Binary::Or), [true, true, true, false]);
    assert_eq!(get(Binary::Xor), [false, true, true, false]);
    assert!(run(Op::Binary(Binary::And), &[a.clone(), b.clone()]).is_err());
}

#[test]
fn where_broadcasts_three_ways() {
    let mut rng = StdRng::seed_from_u64(3);
    for _ in 0..100 {
        let rank = rng.random_range(0..=4);
        let osh = rand_shape(&mut rng, rank, 4);
        let (csh, xsh, ysh) =
            (sub_shape(&mut rng, &osh), sub_shape(&mut rng, &osh), sub_shape(&mut rng, &osh));
        let n: usize = csh.iter().product();
        let c = Tensor::from_vec(csh.clone(), (0..n).map(|_| rng.random_bool(0.5)).collect::<Vec<_>>());
        let (x, y) = (rand_f32(&mut rng, &xsh, 0.0, 1.0), rand_f32(&mut rng, &ysh, -1.0, 0.0));
        let want_shape = broadcast_concrete(&[&csh, &xsh, &ysh]).unwrap();
        let out = run(Op::Where, &[c.clone(), x.clone(), y.clone()]).unwrap();
        assert_eq!(out.shape(), want_shape.as_slice());
        let (cv, xv, yv) = (c.as_slice::<bool>().unwrap(), f32s(&x), f32s(&y));
        for (i, &g) in f32s(&out).iter().enumerate() {
            let idx = unravel(i, &want_shape);
            let w = if cv[bidx(&idx, &csh)] { xv[bidx(&idx, &xsh)] } else { yv[bidx(&idx, &ysh)] };
            assert_eq!(g, w);
        }
    }
    // test_where_long_example: int64 branches.
    let c = Tensor::from_vec(vec![2, 2], vec![true, false, true, true]);
    let x = Tensor::from_vec(vec![2, 2], vec![1i64, 2, 3, 4]);
    let y = Tensor::from_vec(vec![2, 2], vec![9i64, 8, 7, 6]);
    assert_eq!(run(Op::Where, &[c, x, y]).unwrap().as_slice::<i64>().unwrap(), &[1, 8, 3, 4]);
}

#[test]
fn clip_with_and_without_bounds() {
    let x = Tensor::from_vec(vec![5], vec![-2.0f32, -0.5, 0.0, 0.5, f32::NAN]);
    let lo = Tensor::scalar(-1.0f32);
    let hi = Tensor::scalar(0.25f32);
    let y = run(Op::Clip, &[x.clone(), lo.clone(), hi.clone()]).unwrap();
    assert_eq!(f32s(&y)[..4], [-1.0, -0.5, 0.0, 0.25]);
    assert!(f32s(&y)[4].is_nan());
    let y = Op::Clip.eval(&[Some(&x), None, Some(&hi)]).unwrap().remove(0);
    assert_eq!(f32s(&y)[..4], [-2.0, -0.5, 0.0, 0.25]);
    let y = Op::Clip.eval(&[Some(&x), Some(&lo)]).unwrap().remove(0);
    assert_eq!(f32s(&y)[..4], [-1.0, -0.5, 0.0, 0.5]);
    assert_eq!(f32s(&run(Op::Clip, std::slice::from_ref(&x)).unwrap())[..4], [-2.0, -0.5, 0.0, 0.5]);
    // test_clip_min_greater_than_max: the max wins.
    let y = run(
        Op::Clip,
        &[Tensor::from_vec(vec![3], vec![-2.0f32, 0.0, 6.0]), Tensor::scalar(2.0f32), Tensor::scalar(1.0f32)],
    );
    assert_eq!(f32s(&y.unwrap()), [1.0, 1.0, 1.0]);
    let xi = Tensor::from_vec(vec![3], vec![-5i8, 3, 100]);
    let y = run(Op::Clip, &[xi, Tensor::scalar(0i8), Tensor::scalar(50i8)]).unwrap();
    assert_eq!(y.as_slice::<i8>().unwrap(), &[0, 3, 50]);
    assert!(run(Op::Clip, &[x, Tensor::scalar(0i32)]).is_err());
}

#[test]
fn variadic_ops() {
    let a = Tensor::from_vec(vec![3], vec![3.0f32, 2.0, 1.0]);
    let b = Tensor::from_vec(vec![3], vec![1.0f32, 4.0, 4.0]);
    let c = Tensor::from_vec(vec![3], vec![2.0f32, 5.0, 3.0]);
    let v = |op, xs: &[Tensor]| f32s(&run(Op::Variadic(op), xs).unwrap());
    assert_eq!(v(Variadic::Max, &[a.clone(), b.clone(), c.clone()]), [3.0, 5.0, 4.0]);
    assert_eq!(v(Variadic::Min, &[a.clone(), b.clone(), c.clone()]), [1.0, 2.0, 1.0]);
    assert_eq!(v(Variadic::Sum, &[a.clone(), b.clone(), c.clone()]), [6.0, 11.0, 8.0]);
    assert_eq!(v(Variadic::Mean, &[a.clone(), b.clone(), c.clone()]), [2.0, 11.0 / 3.0, 8.0 / 3.0]);
    assert_eq!(v(Variadic::Mean, std::slice::from_ref(&a)), [3.0, 2.0, 1.0]);
    let n = Tensor::from_vec(vec![2, 1], vec![f32::NAN, 0.0]);
    let m = v(Variadic::Max, &[n.clone(), a.clone()]);
    assert!(m[..3].iter().all(|x| x.is_nan()) && m[3..] == [3.0, 2.0, 1.0]);
    let m = v(Variadic::Min, &[a.clone(), n]);
    assert!(m[..3].iter().all(|x| x.is_nan()) && m[3..] == [0.0, 0.0, 0.0]);
    let i = |v: &[u16]| Tensor::from_vec(vec![v.len()], v.to_vec());
    let m = run(Op::Variadic(Variadic::Max), &[i(&[1, 60000]), i(&[2, 5])]).unwrap();
    assert_eq!(m.as_slice::<u16>().unwrap(), &[2, 60000]);
}

#[test]
fn cast_and_f16() {
    let x = Tensor::from_vec(vec![3], vec![0.478_925_47f32, f32::NAN, -f32::INFINITY]);
    let y = run(Op::Cast(DType::F16), &[x]).unwrap();
    let h = y.as_slice::<f16>().unwrap();
    assert_eq!(h[0], f16::from_f32(0.478_925_47));
    assert!(h[1].is_nan() && h[2] == f16::NEG_INFINITY);
    let a = Tensor::from_vec(vec![2], vec![f16::from_f32(1.5), f16::from_f32(2.0)]);
    let s = run(Op::Binary(Binary::Mul), &[a.clone(), a.clone()]).unwrap();
    assert_eq!(s.as_slice::<f16>().unwrap(), &[f16::from_f32(2.25), f16::from_f32(4.0)]);
    let c = run(Op::Binary(Binary::Less), &[a.clone(), Tensor::scalar(f16::from_f32(1.7))]).unwrap();
    assert_eq!(c.as_slice::<bool>().unwrap(), &[true, false]);
}

#[test]
fn infer_broadcasts_symbolic_dims_and_reports_bad_shapes() {
    let n = Dim::Sym("N".into());
    let x = Fact::new(DType::F32, vec![n.clone(), Dim::Known(3), Dim::Known(1)]);
    let y = Fact::new(DType::F32, vec![Dim::Known(4)]);
    let out = Op::Binary(Binary::Add).infer(&[Some(&x), Some(&y)]).unwrap();
    assert_eq!(out[0].shape, vec![n.clone(), Dim::Known(3), Dim::Known(4)]);
    let out = Op::Binary(Binary::Less).infer(&[Some(&x), Some(&y)]).unwrap();
    assert_eq!(out[0].dtype, DType::Bool);
    let a = Fact::new(DType::F32, vec![Dim::Known(2), Dim::Known(3)]);
    let b = Fact::new(DType::F32, vec![Dim::Known(4)]);
    let err = Op::Binary(Binary::Add).infer(&[Some(&a), Some(&b)]).unwrap_err();
    assert_eq!(err.to_string(), "cannot broadcast [2,3] with [4]");
    let err = run(
        Op::Binary(Binary::Mul),
        &[Tensor::zeros(DType::F32, vec![2, 3]), Tensor::zeros(DType::F32, vec![4])],
    );
    assert_eq!(err.unwrap_err().to_string(), "cannot broadcast [2,3] with [4]");
    let c = Fact::new(DType::Bool, vec![Dim::Unknown, Dim::Known(1)]);
    let out = Op::Where.infer(&[Some(&c), Some(&x), Some(&y)]).unwrap();
    assert_eq!(out[0].shape, vec![n, Dim::Known(3), Dim::Known(4)]);
    let i = Fact::new(DType::I64, vec![Dim::Known(4)]);
    let err = Op::Binary(Binary::Add).infer(&[Some(&a), Some(&i)]).unwrap_err().to_string();
    assert!(err.contains("float32 and int64"), "{err}");
    let out = Op::Unary(Unary::IsNaN).infer(&[Some(&a)]).unwrap();
    assert_eq!((out[0].dtype, out[0].shape.clone()), (DType::Bool, a.shape.clone()));
    let out = Op::Cast(DType::F16).infer(&[Some(&x)]).unwrap();
    assert_eq!(out[0].dtype, DType::F16);
    let out = Op::Variadic(Variadic::Sum).infer(&[Some(&x), Some(&y), Some(&a)]).unwrap_err();
    assert!(out.to_string().starts_with("cannot broadcast [N,3,1] with [4] with [2,3]"));
}
