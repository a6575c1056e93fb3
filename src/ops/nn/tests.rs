//! Tests for the neural-network ops against naive references.

use crate::ir::{Act, AutoPad, Conv, ConvTranspose, Dim, Fact, Op, Pool, known_shape};
use crate::tensor::{DType, Tensor, numel, strides};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub(super) fn rand_vec(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

pub(super) fn t(shape: &[usize], v: Vec<f32>) -> Tensor {
    Tensor::from_vec(shape.to_vec(), v)
}

pub(super) fn run(op: &Op, ins: Vec<Option<Tensor>>) -> Vec<Tensor> {
    let facts: Vec<Option<Fact>> =
        ins.iter().map(|t| t.as_ref().map(|t| Fact::new(t.dtype(), known_shape(t.shape())))).collect();
    let frefs: Vec<Option<&Fact>> = facts.iter().map(|f| f.as_ref()).collect();
    let inferred = op.infer(&frefs).unwrap();
    let outs = op.eval_owned(ins).unwrap();
    assert_eq!(inferred.len(), outs.len(), "{op:?}");
    for (f, o) in inferred.iter().zip(&outs) {
        assert_eq!(f.shape, known_shape(o.shape()), "{op:?}: inferred vs evaluated shape");
        assert_eq!(f.dtype, o.dtype());
    }
    outs
}

pub(super) fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{what}: element {i}: got {g}, want {w}");
    }
}

pub(super) fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    idx
}

/// (pads begin, pads end) for auto_pad, computed independently of `geom`.
fn auto_pads(ap: AutoPad, n: usize, ek: usize, s: usize, pads: (usize, usize)) -> (usize, usize) {
    match ap {
        AutoPad::NotSet => pads,
        AutoPad::Valid => (0, 0),
        _ => {
            let out = n.div_ceil(s);
            let total = ((out - 1) * s + ek).saturating_sub(n);
            if ap == AutoPad::SameUpper {
                (total / 2, total - total / 2)
            } else {
                (total - total / 2, total / 2)
            }
        }
    }
}

struct Win {
    k: Vec<usize>,
    s: Vec<usize>,
    d: Vec<usize>,
    pb: Vec<usize>,
    pe: Vec<usize>,
}

/// Output spatial size; window taps at `o*s + k*d - pb`.
fn out_size(n: usize, k: usize, s: usize, d: usize, pb: usize, pe: usize, ceil: bool) -> usize {
    let ek = (k - 1) * d + 1;
    let num = n + pb + pe - ek;
    let mut o = if ceil { num.div_ceil(s) + 1 } else { num / s + 1 };
    if ceil && (o - 1) * s >= n + pb {
        o -= 1;
    }
    o
}

/// Taps of output position `o` (per axis) that fall inside the input, as input positions.
fn taps(o: &[usize], w: &Win, ins: &[usize], kpos: &[usize]) -> Option<Vec<usize>> {
    let mut p = Vec::with_capacity(o.len());
    for a in 0..o.len() {
        let q = (o[a] * w.s[a] + kpos[a] * w.d[a]) as i64 - w.pb[a] as i64;
        if q < 0 || q >= ins[a] as i64 {
            return None;
        }
        p.push(q as usize);
    }
    Some(p)
}

#[allow(clippy::too_many_arguments)]
fn conv_naive(
    x: &[f32],
    xs: &[usize],
    w: &[f32],
    ws: &[usize],
    b: Option<&[f32]>,
    g: usize,
    win: &Win,
) -> (Vec<f32>, Vec<usize>) {
    let r = xs.len() - 2;
    let outs: Vec<usize> = (0..r)
        .map(|a| out_size(xs[2 + a], win.k[a], win.s[a], win.d[a], win.pb[a], win.pe[a], false))
        .collect();
    let (n, m, cg) = (xs[0], ws[0], ws[1]);
    let mg = m / g;
    let mut shape = vec![n, m];
    shape.extend(&outs);
    let (xst, wst) = (strides(xs), strides(ws));
    let mut y = vec![0f32; numel(&shape)];
    for (yi, yv) in y.iter_mut().enumerate() {
        let idx = unravel(yi, &shape);
        let (bn, oc) = (idx[0], idx[1]);
        let gi = oc / mg;
        let mut acc = b.map_or(0.0, |b| b[oc]) as f64;
        for ci in 0..cg {
            for kp in 0..numel(&win.k) {
                let kpos = unravel(kp, &win.k);
                if let Some(p) = taps(&idx[2..], win, &xs[2..], &kpos) {
                    let mut xo = bn * xst[0] + (gi * cg + ci) * xst[1];
                    let mut wo = oc * wst[0] + ci * wst[1];
                    for a in 0..r {
                        xo += p[a] * xst[2 + a];
                        wo += kpos[a] * wst[2 + a];
                    }
                    acc += (x[xo] * w[wo]) as f64;
                }
            }
        }
        *yv = acc as f32;
    }
    (y, shape)
}

/// Activation by definition, for the references.
pub(super) fn apply_act(a: Act, v: f32) -> f32 {
    match a {
        Act::None => v,
        Act::Relu => v.max(0.0),
        Act::Clip { min, max } => v.clamp(min, max),
        Act::LeakyRelu(al) => {
            if v < 0.0 {
                al * v
            } else {
                v
            }
        }
        Act::Sigmoid => 1.0 / (1.0 + (-v).exp()),
        Act::HardSigmoid { alpha, beta } => (alpha * v + beta).clamp(0.0, 1.0),
        Act::HardSwish => v * (v / 6.0 + 0.5).clamp(0.0, 1.0),
    }
}

const ACTS: [Act; 7] = [
    Act::None,
    Act::Relu,
    Act::Clip { min: -0.2, max: 0.3 },
    Act::LeakyRelu(0.1),
    Act::Sigmoid,
    Act::HardSigmoid { alpha: 0.2, beta: 0.5 },
    Act::HardSwish,
];

#[test]
fn conv_matches_naive_reference() {
    let mut rng = StdRng::seed_from_u64(1);
    for case in 0..120 {
        let r = 1 + case % 3;
        let g = [1, 1, 2, 3][rng.random_range(0..4)];
        let (cg, mg) = (rng.random_range(1..4), rng.random_range(1..4));
        let n = rng.random_range(1..3);
        let k: Vec<usize> = (0..r).map(|_| rng.random_range(1..4)).collect();
        let s: Vec<usize> = (0..r).map(|_| rng.random_range(1..4)).collect();
        let d: Vec<usize> = (0..r).map(|_| rng.random_range(1..3)).collect();
        let pads: Vec<usize> = (0..2 * r).map(|_| rng.random_range(0..3)).collect();
        let ap = [AutoPad::NotSet, AutoPad::NotSet, AutoPad::SameUpper, AutoPad::SameLower, AutoPad::Valid]
            [rng.random_range(0..5)];
        let ins: Vec<usize> = (0..r).map(|a| (k[a] - 1) * d[a] + 1 + rng.random_range(0..5)).collect();
        let act = ACTS[rng.random_range(0..ACTS.len())];
        let mut xs = vec![n, cg * g];
        xs.extend(&ins);
        let mut ws = vec![mg * g, cg];
        ws.extend(&k);
        let (x, w, b) =
            (rand_vec(&mut rng, numel(&xs)), rand_vec(&mut rng, numel(&ws)), rand_vec(&mut rng, mg * g));
        let with_bias = rng.random_bool(0.7);
        let mut win = Win { k: k.clone(), s: s.clone(), d: d.clone(), pb: vec![], pe: vec![] };
        for a in 0..r {
            let (pb, pe) = auto_pads(ap, ins[a], (k[a] - 1) * d[a] + 1, s[a], (pads[a], pads[r + a]));
            win.pb.push(pb);
            win.pe.push(pe);
        }
        let (mut want, shape) = conv_naive(&x, &xs, &w, &ws, with_bias.then_some(&b[..]), g, &win);
        want.iter_mut().for_each(|v| *v = apply_act(act, *v));
        let kernel = if rng.random_bool(0.5) { k.clone() } else { vec![] };
        let op = Op::Conv(Conv { kernel, strides: s, dilations: d, pads, auto_pad: ap, group: g, act });
        let bias = with_bias.then(|| t(&[mg * g], b));
        let outs = run(&op, vec![Some(t(&xs, x)), Some(t(&ws, w)), bias]);
        assert_eq!(outs[0].shape(), &shape[..], "case {case}");
        assert_close(outs[0].f32s().unwrap(), &want, 1e-4, &format!("conv case {case} {op:?}"));
    }
}

#[test]
fn conv_infer_symbolic_and_errors() {
    let n = Dim::Sym("N".into());
    let x = Fact::new(DType::F32, vec![n.clone(), Dim::Known(3), Dim::Known(32), Dim::Sym("W".into())]);
    let w = Fact::konst(Tensor::zeros(DType::F32, vec![8, 3, 3, 3]));
    let conv = |pads: Vec<usize>, strides: Vec<usize>, auto_pad| {
        Op::Conv(Conv {
            kernel: vec![],
            strides,
            dilations: vec![],
            pads,
            auto_pad,
            group: 1,
            act: Act::None,
        })
    };
    let out = conv(vec![1, 1, 1, 1], vec![], AutoPad::NotSet).infer(&[Some(&x), Some(&w)]).unwrap();
    assert_eq!(out[0].shape, vec![n.clone(), Dim::Known(8), Dim::Known(32), Dim::Sym("W".into())]);
    let out = conv(vec![], vec![2, 2], AutoPad::SameUpper).infer(&[Some(&x), Some(&w)]).unwrap();
    assert_eq!(out[0].shape, vec![n.clone(), Dim::Known(8), Dim::Known(16), Dim::Unknown]);
    let bad = Fact::new(DType::F32, known_shape(&[1, 48, 56, 56]));
    let w64 = Fact::new(DType::F32, known_shape(&[64, 32, 3, 3]));
    let err = conv(vec![], vec![], AutoPad::NotSet).infer(&[Some(&bad), Some(&w64)]).unwrap_err().to_string();
    assert_eq!(err, "weight [64,32,3,3] needs 32 input channels (x group 1), got 48 in input [1,48,56,56]");
    let tiny = Tensor::zeros(DType::F32, vec![1, 3, 2, 2]);
    let err =
        conv(vec![], vec![], AutoPad::NotSet).eval(&[Some(&tiny), w.konst.as_ref()]).unwrap_err().to_string();
    assert!(err.contains("does not fit"), "{err}");
}

fn conv_transpose_naive(
    x: &[f32],
    xs: &[usize],
    w: &[f32],
    ws: &[usize],
    g: usize,
    win: &Win,
    outs: &[usize],
) -> Vec<f32> {
    let r = xs.len() - 2;
    let (n, c, mg) = (xs[0], xs[1], ws[1]);
    let cg = c / g;
    let mut shape = vec![n, mg * g];
    shape.extend(outs);
    let ost = strides(&shape);
    let mut y = vec![0f32; numel(&shape)];
    for (xi, &xv) in x.iter().enumerate() {
        let idx = unravel(xi, xs);
        let gi = idx[1] / cg;
        for oc in 0..mg {
            for kp in 0..numel(&win.k) {
                let kpos = unravel(kp, &win.k);
                let mut yo = idx[0] * ost[0] + (gi * mg + oc) * ost[1];
                let mut ok = true;
                for a in 0..r {
                    let q = (idx[2 + a] * win.s[a] + kpos[a] * win.d[a]) as i64 - win.pb[a] as i64;
                    ok &= q >= 0 && q < outs[a] as i64;
                    yo += q.max(0) as usize * ost[2 + a];
                }
                if ok {
                    let mut wi = vec![idx[1], oc];
                    wi.extend(&kpos);
                    let wo: usize = wi.iter().zip(strides(ws)).map(|(a, b)| a * b).sum();
                    y[yo] += xv * w[wo];
                }
            }
        }
    }
    y
}

#[test]
fn conv_transpose_matches_naive_reference() {
    let mut rng = StdRng::seed_from_u64(2);
    for case in 0..60 {
        let r = 1 + case % 3;
        let g = [1, 2][rng.random_range(0..2)];
        let (cg, mg, n) = (rng.random_range(1..3), rng.random_range(1..3), rng.random_range(1..3));
        let k: Vec<usize> = (0..r).map(|_| rng.random_range(1..4)).collect();
        let s: Vec<usize> = (0..r).map(|_| rng.random_range(1..4)).collect();
        let d: Vec<usize> = (0..r).map(|_| rng.random_range(1..3)).collect();
        let ins: Vec<usize> = (0..r).map(|_| rng.random_range(1..5)).collect();
        let op_pad: Vec<usize> = (0..r).map(|a| rng.random_range(0..s[a])).collect();
        let full: Vec<usize> =
            (0..r).map(|a| s[a] * (ins[a] - 1) + op_pad[a] + (k[a] - 1) * d[a] + 1).collect();
        let pads: Vec<usize> =
            (0..2 * r).map(|i| rng.random_range(0..=((full[i % r] - 1) / 2).min(2))).collect();
        let mode = rng.random_range(0..3);
        let (outs, pb, output_shape, ap): (Vec<usize>, Vec<usize>, Vec<usize>, AutoPad) = match mode {
            0 => (
                (0..r).map(|a| full[a] - pads[a] - pads[r + a]).collect(),
                pads[..r].to_vec(),
                vec![],
                AutoPad::NotSet,
            ),
            1 => {
                let outs: Vec<usize> = (0..r).map(|a| ins[a] * s[a]).collect();
                let pb = (0..r).map(|a| (full[a] as i64 - outs[a] as i64).max(0) as usize / 2).collect();
                (outs, pb, vec![], AutoPad::SameUpper)
            }
            _ => {
                let outs: Vec<usize> = (0..r).map(|a| full[a] - rng.random_range(0..2)).collect();
                let pb = (0..r).map(|a| (full[a] - outs[a]) - (full[a] - outs[a]) / 2).collect();
                (outs.clone(), pb, outs, AutoPad::NotSet)
            }
        };
        if mode == 1 && (0..r).any(|a| full[a] < ins[a] * s[a]) {
            continue;
        }
        let mut xs = vec![n, cg * g];
        xs.extend(&ins);
        let mut ws = vec![cg * g, mg];
        ws.extend(&k);
        let (x, w, b) =
            (rand_vec(&mut rng, numel(&xs)), rand_vec(&mut rng, numel(&ws)), rand_vec(&mut rng, mg * g));
        let win = Win { k: k.clone(), s: s.clone(), d: d.clone(), pb, pe: vec![] };
        let mut want = conv_transpose_naive(&x, &xs, &w, &ws, g, &win, &outs);
        let plane = numel(&outs);
        want.iter_mut().enumerate().for_each(|(i, v)| *v += b[(i / plane) % (mg * g)]);
        let op = Op::ConvTranspose(ConvTranspose {
            kernel: vec![],
            strides: s,
            dilations: d,
            pads: if mode == 0 { pads } else { vec![] },
            output_padding: op_pad,
            output_shape,
            auto_pad: ap,
            group: g,
        });
        let outs_t = run(&op, vec![Some(t(&xs, x)), Some(t(&ws, w)), Some(t(&[mg * g], b))]);
        assert_close(outs_t[0].f32s().unwrap(), &want, 1e-4, &format!("convtranspose case {case} {op:?}"));
    }
}

/// (max or average, argmax) of each window; `include_pad` counts taps inside the padded extent.
fn pool_naive(
    x: &[f32],
    xs: &[usize],
    win: &Win,
    ceil: bool,
    include_pad: bool,
) -> (Vec<f32>, Vec<f32>, Vec<i64>, Vec<usize>) {
    let r = xs.len() - 2;
    let outs: Vec<usize> = (0..r)
        .map(|a| out_size(xs[2 + a], win.k[a], win.s[a], win.d[a], win.pb[a], win.pe[a], ceil))
        .collect();
    let mut shape = xs[..2].to_vec();
    shape.extend(&outs);
    let sp = numel(&xs[2..]);
    let xst = strides(&xs[2..]);
    let total = numel(&shape);
    let (mut mx, mut avg, mut arg) = (vec![0f32; total], vec![0f32; total], vec![0i64; total]);
    for yi in 0..total {
        let idx = unravel(yi, &shape);
        let base = (idx[0] * xs[1] + idx[1]) * sp;
        let (mut best, mut besti, mut sum, mut cnt, mut padded) = (f32::NEG_INFINITY, -1i64, 0f32, 0, 0);
        for kp in 0..numel(&win.k) {
            let kpos = unravel(kp, &win.k);
            let inside_pad = (0..r)
                .all(|a| idx[2 + a] * win.s[a] + kpos[a] * win.d[a] < xs[2 + a] + win.pb[a] + win.pe[a]);
            padded += inside_pad as usize;
            if let Some(p) = taps(&idx[2..], win, &xs[2..], &kpos) {
                let off = base + p.iter().zip(&xst).map(|(a, b)| a * b).sum::<usize>();
                if x[off] > best {
                    best = x[off];
                    besti = off as i64;
                }
                sum += x[off];
                cnt += 1;
            }
        }
        mx[yi] = best;
        arg[yi] = besti;
        let div = if include_pad { padded } else { cnt };
        avg[yi] = if div == 0 { 0.0 } else { sum / div as f32 };
    }
    (mx, avg, arg, shape)
}

#[test]
fn pools_match_naive_reference() {
    let mut rng = StdRng::seed_from_u64(3);
    for case in 0..120 {
        let r = 1 + case % 3;
        let k: Vec<usize> = (0..r).map(|_| rng.random_range(1..4)).collect();
        let s: Vec<usize> = (0..r).map(|_| rng.random_range(1..4)).collect();
        let d: Vec<usize> = (0..r).map(|_| rng.random_range(1..3)).collect();
        let pads: Vec<usize> = (0..2 * r).map(|i| rng.random_range(0..k[i % r])).collect();
        let ap = [AutoPad::NotSet, AutoPad::NotSet, AutoPad::SameUpper, AutoPad::SameLower, AutoPad::Valid]
            [rng.random_range(0..5)];
        let ceil = ap == AutoPad::NotSet && rng.random_bool(0.5);
        let include_pad = rng.random_bool(0.5);
        let ins: Vec<usize> = (0..r).map(|a| (k[a] - 1) * d[a] + 1 + rng.random_range(0..5)).collect();
        let mut xs = vec![rng.random_range(1..3), rng.random_range(1..4)];
        xs.extend(&ins);
        let x = rand_vec(&mut rng, numel(&xs));
        let mut win = Win { k: k.clone(), s: s.clone(), d: d.clone(), pb: vec![], pe: vec![] };
        for a in 0..r {
            let (pb, pe) = auto_pads(ap, ins[a], (k[a] - 1) * d[a] + 1, s[a], (pads[a], pads[r + a]));
            win.pb.push(pb);
            win.pe.push(pe);
        }
        let (mx, avg, arg, shape) = pool_naive(&x, &xs, &win, ceil, include_pad);
        let pool = Pool {
            kernel: k,
            strides: s,
            dilations: d,
            pads,
            auto_pad: ap,
            ceil_mode: ceil,
            count_include_pad: include_pad,
            indices: true,
        };
        let outs = run(&Op::MaxPool(pool.clone()), vec![Some(t(&xs, x.clone()))]);
        assert_eq!(outs[0].shape(), &shape[..]);
        assert_close(outs[0].f32s().unwrap(), &mx, 0.0, &format!("maxpool case {case} {pool:?}"));
        assert_eq!(outs[1].as_slice::<i64>().unwrap(), &arg[..], "argmax case {case}");
        let outs = run(&Op::AveragePool(pool.clone()), vec![Some(t(&xs, x.clone()))]);
        assert_close(outs[0].f32s().unwrap(), &avg, 1e-5, &format!("avgpool case {case} {pool:?}"));
        let one = run(&Op::MaxPool(Pool { indices: false, ..pool }), vec![Some(t(&xs, x))]);
        assert_eq!(one.len(), 1);
    }
}

#[test]
fn global_pools_and_uint8_maxpool() {
    let x = t(&[1, 2, 2, 2], vec![1., 2., 3., 4., -1., -5., 0., -2.]);
    let outs = run(&Op::GlobalAveragePool, vec![Some(x.clone())]);
    assert_eq!(outs[0].shape(), &[1, 2, 1, 1]);
    assert_close(outs[0].f32s().unwrap(), &[2.5, -2.0], 1e-6, "gap");
    let outs = run(&Op::GlobalMaxPool, vec![Some(x)]);
    assert_close(outs[0].f32s().unwrap(), &[4.0, 0.0], 0.0, "gmp");
    let xu = Tensor::from_vec(vec![1, 1, 2, 2], vec![1u8, 200, 3, 4]);
    let pool = Pool {
        kernel: vec![2, 2],
        strides: vec![],
        dilations: vec![],
        pads: vec![],
        auto_pad: AutoPad::NotSet,
        ceil_mode: false,
        count_include_pad: false,
        indices: false,
    };
    let outs = run(&Op::MaxPool(pool), vec![Some(xu)]);
    assert_eq!(outs[0].as_slice::<u8>().unwrap(), &[200]);
}
