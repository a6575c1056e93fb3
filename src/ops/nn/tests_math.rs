//! Tests for MatMul, Gemm, normalisations and Softmax against naive references, and a runner
//! for the ONNX node conformance cases of this family.

use crate::ir::{Act, BatchNorm, Dim, Fact, Gemm, LayerNorm, Op, known_shape};
use crate::tensor::{DType, Tensor, numel, strides};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::tests::{assert_close, rand_vec, run, t, unravel};

/// numpy matmul by definition: promote 1-D, broadcast batch dims.
fn matmul_naive(a: &[f32], ash: &[usize], b: &[f32], bsh: &[usize]) -> (Vec<f32>, Vec<usize>) {
    let a2: Vec<usize> = if ash.len() == 1 { vec![1, ash[0]] } else { ash.to_vec() };
    let b2: Vec<usize> = if bsh.len() == 1 { vec![bsh[0], 1] } else { bsh.to_vec() };
    let r = a2.len().max(b2.len());
    let pad = |s: &[usize]| [vec![1; r - s.len()], s.to_vec()].concat();
    let (ap, bp) = (pad(&a2), pad(&b2));
    let mut full: Vec<usize> = (0..r - 2).map(|i| ap[i].max(bp[i])).collect();
    let (m, k, n) = (ap[r - 2], ap[r - 1], bp[r - 1]);
    full.extend([m, n]);
    let (ast, bst) = (strides(&ap), strides(&bp));
    let mut c = vec![0f32; numel(&full)];
    for (ci, cv) in c.iter_mut().enumerate() {
        let idx = unravel(ci, &full);
        let (mut ao, mut bo) = (0, 0);
        for d in 0..r - 2 {
            ao += if ap[d] == 1 { 0 } else { idx[d] * ast[d] };
            bo += if bp[d] == 1 { 0 } else { idx[d] * bst[d] };
        }
        let (i, j) = (idx[r - 2], idx[r - 1]);
        *cv = (0..k).map(|kk| a[ao + i * k + kk] as f64 * b[bo + kk * n + j] as f64).sum::<f64>() as f32;
    }
    let mut shape = full[..r - 2].to_vec();
    if ash.len() > 1 {
        shape.push(m);
    }
    if bsh.len() > 1 {
        shape.push(n);
    }
    (c, shape)
}

#[test]
fn matmul_matches_naive_reference() {
    let mut rng = StdRng::seed_from_u64(4);
    let cases: Vec<(Vec<usize>, Vec<usize>)> = vec![
        (vec![3], vec![3]),
        (vec![3], vec![2, 3, 4]),
        (vec![2, 3, 4], vec![4]),
        (vec![5, 7], vec![7, 6]),
        (vec![2, 3, 5, 7], vec![7, 6]),
        (vec![2, 1, 5, 7], vec![3, 7, 6]),
        (vec![5, 7], vec![4, 7, 6]),
        (vec![1, 4, 2, 3], vec![2, 1, 3, 5]),
        (vec![2, 0, 3], vec![3, 4]),
        (vec![2, 3, 0], vec![0, 4]),
    ];
    for (ash, bsh) in cases {
        let (a, b) = (rand_vec(&mut rng, numel(&ash)), rand_vec(&mut rng, numel(&bsh)));
        let (want, shape) = matmul_naive(&a, &ash, &b, &bsh);
        let outs = run(&Op::MatMul, vec![Some(t(&ash, a.clone())), Some(t(&bsh, b.clone()))]);
        assert_eq!(outs[0].shape(), &shape[..], "{ash:?} x {bsh:?}");
        assert_close(outs[0].f32s().unwrap(), &want, 1e-5, &format!("{ash:?} x {bsh:?}"));
        let (a64, b64) = (t(&ash, a).cast(DType::F64), t(&bsh, b).cast(DType::F64));
        let outs = run(&Op::MatMul, vec![Some(a64), Some(b64)]);
        let got: Vec<f32> = outs[0].to_f64_vec().iter().map(|&v| v as f32).collect();
        assert_close(&got, &want, 1e-5, "f64");
    }
    let ai = Tensor::from_vec(vec![2, 2], vec![1i64, 2, 3, 4]);
    let outs = run(&Op::MatMul, vec![Some(ai.clone()), Some(ai)]);
    assert_eq!(outs[0].as_slice::<i64>().unwrap(), &[7, 10, 15, 22]);
    let n = Dim::Sym("N".into());
    let a = Fact::new(DType::F32, vec![n.clone(), Dim::Known(1), Dim::Known(5), Dim::Known(7)]);
    let b = Fact::new(DType::F32, known_shape(&[3, 7, 6]));
    let out = Op::MatMul.infer(&[Some(&a), Some(&b)]).unwrap();
    assert_eq!(out[0].shape, vec![n, Dim::Known(3), Dim::Known(5), Dim::Known(6)]);
    let bad = Fact::new(DType::F32, known_shape(&[6, 6]));
    assert!(Op::MatMul.infer(&[Some(&a), Some(&bad)]).is_err());
}

#[test]
fn gemm_matches_naive_reference() {
    let mut rng = StdRng::seed_from_u64(5);
    for case in 0..40 {
        let (m, k, n) = (rng.random_range(1..9), rng.random_range(1..9), rng.random_range(1..9));
        let (ta, tb) = (rng.random_bool(0.5), rng.random_bool(0.5));
        let (alpha, beta) = (rng.random_range(-2.0f32..2.0), [0.0, 1.0, 0.5][case % 3]);
        let csh: Vec<usize> =
            [vec![], vec![n], vec![1, n], vec![m, 1], vec![m, n], vec![1]][case % 6].clone();
        let act = [Act::None, Act::Relu, Act::HardSwish, Act::Clip { min: 0.0, max: 0.5 }][case % 4];
        let ash = if ta { vec![k, m] } else { vec![m, k] };
        let bsh = if tb { vec![n, k] } else { vec![k, n] };
        let (a, b, c) =
            (rand_vec(&mut rng, m * k), rand_vec(&mut rng, k * n), rand_vec(&mut rng, numel(&csh)));
        let cp = [vec![1; 2 - csh.len()], csh.clone()].concat();
        let mut want = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0f64;
                for kk in 0..k {
                    let av = if ta { a[kk * m + i] } else { a[i * k + kk] };
                    let bv = if tb { b[j * k + kk] } else { b[kk * n + j] };
                    s += av as f64 * bv as f64;
                }
                let cv = c[(if cp[0] == 1 { 0 } else { i }) * cp[1] + if cp[1] == 1 { 0 } else { j }];
                let v = alpha * s as f32 + beta * cv;
                want[i * n + j] = super::tests::apply_act(act, v);
            }
        }
        let op = Op::Gemm(Gemm { alpha, beta, trans_a: ta, trans_b: tb, act });
        let outs = run(&op, vec![Some(t(&ash, a)), Some(t(&bsh, b)), Some(t(&csh, c))]);
        assert_close(outs[0].f32s().unwrap(), &want, 1e-5, &format!("gemm case {case} {op:?} C {csh:?}"));
    }
}

#[test]
fn batch_norm_inference_and_training() {
    let x = t(&[2, 1, 2], vec![1., 2., 3., 4.]);
    let p = |v: f32| Some(t(&[1], vec![v]));
    let eps = 1e-5;
    let op = Op::BatchNorm(BatchNorm { epsilon: eps, momentum: 0.9, training: false });
    let outs = run(&op, vec![Some(x.clone()), p(2.0), p(0.5), p(1.0), p(4.0)]);
    let want: Vec<f32> =
        [1., 2., 3., 4.].iter().map(|v| (v - 1.0) / (4.0f32 + eps).sqrt() * 2.0 + 0.5).collect();
    assert_close(outs[0].f32s().unwrap(), &want, 1e-6, "bn inference");
    // Batch statistics by hand: mean 2.5, biased variance 1.25.
    let op = Op::BatchNorm(BatchNorm { epsilon: eps, momentum: 0.9, training: true });
    let outs = run(&op, vec![Some(x), p(2.0), p(0.5), p(0.0), p(1.0)]);
    let want: Vec<f32> =
        [1., 2., 3., 4.].iter().map(|v| (v - 2.5) / (1.25f32 + eps).sqrt() * 2.0 + 0.5).collect();
    assert_close(outs[0].f32s().unwrap(), &want, 1e-6, "bn training y");
    assert_close(outs[1].f32s().unwrap(), &[0.25], 1e-6, "running mean");
    assert_close(outs[2].f32s().unwrap(), &[0.9 + 0.1 * 1.25], 1e-6, "running var");
    // Larger, multi-channel, checked against per-channel statistics computed here.
    let mut rng = StdRng::seed_from_u64(6);
    let (n, c, s) = (3, 4, 50);
    let xv = rand_vec(&mut rng, n * c * s);
    let ps: Vec<Vec<f32>> = (0..4)
        .map(|i| rand_vec(&mut rng, c).iter().map(|v| if i == 3 { v.abs() + 0.1 } else { *v }).collect())
        .collect();
    let pin = |i: usize| Some(t(&[c], ps[i].clone()));
    let outs = run(&op, vec![Some(t(&[n, c, 5, 10], xv.clone())), pin(0), pin(1), pin(2), pin(3)]);
    for ch in 0..c {
        let vals: Vec<f64> = (0..n)
            .flat_map(|b| xv[(b * c + ch) * s..(b * c + ch + 1) * s].iter().map(|&v| v as f64))
            .collect();
        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
        let y = outs[0].f32s().unwrap();
        let yi = (c + ch) * s + 7;
        let want = (xv[yi] as f64 - mean) / (var + eps as f64).sqrt() * ps[0][ch] as f64 + ps[1][ch] as f64;
        assert!((y[yi] as f64 - want).abs() < 1e-4, "channel {ch}");
        let rm = outs[1].f32s().unwrap()[ch] as f64;
        assert!((rm - (ps[2][ch] as f64 * 0.9 + mean * 0.1)).abs() < 1e-5);
        let rv = outs[2].f32s().unwrap()[ch] as f64;
        assert!((rv - (ps[3][ch] as f64 * 0.9 + var * 0.1)).abs() < 1e-5);
    }
}

#[test]
fn layer_norm_matches_reference() {
    let mut rng = StdRng::seed_from_u64(7);
    let shape = [2, 3, 4, 5];
    let x = rand_vec(&mut rng, numel(&shape));
    for axis in -4i64..4 {
        let ax = axis.rem_euclid(4) as usize;
        let (rows, cols) = (numel(&shape[..ax]), numel(&shape[ax..]));
        let (sc, b) = (rand_vec(&mut rng, cols), rand_vec(&mut rng, cols));
        let op = Op::LayerNorm(LayerNorm { axis, epsilon: 1e-3, stats: true });
        let outs = run(
            &op,
            vec![
                Some(t(&shape, x.clone())),
                Some(t(&shape[ax..], sc.clone())),
                Some(t(&shape[ax..], b.clone())),
            ],
        );
        let mut want = vec![0f32; x.len()];
        for r in 0..rows {
            let row = &x[r * cols..(r + 1) * cols];
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / cols as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / cols as f64;
            let inv = 1.0 / (var + 1e-3).sqrt();
            for j in 0..cols {
                want[r * cols + j] = ((row[j] as f64 - mean) * inv * sc[j] as f64 + b[j] as f64) as f32;
            }
            assert!((outs[1].f32s().unwrap()[r] as f64 - mean).abs() < 1e-5);
            assert!((outs[2].f32s().unwrap()[r] as f64 - inv).abs() < 1e-4 * inv);
        }
        assert_close(outs[0].f32s().unwrap(), &want, 1e-5, &format!("layernorm axis {axis}"));
        let no_stats = Op::LayerNorm(LayerNorm { axis, epsilon: 1e-3, stats: false });
        let one = run(&no_stats, vec![Some(t(&shape, x.clone())), Some(t(&[1], vec![2.0])), None]);
        assert_eq!(one.len(), 1);
    }
}

#[test]
fn softmax_matches_reference() {
    let mut rng = StdRng::seed_from_u64(8);
    let shape = [3, 4, 5];
    let x: Vec<f32> = rand_vec(&mut rng, 60).iter().map(|v| v * 10.0).collect();
    for axis in -3i64..3 {
        for log in [false, true] {
            for legacy in [false, true] {
                let ax = axis.rem_euclid(3) as usize;
                let (outer, n, inner) = if legacy {
                    (numel(&shape[..ax]), numel(&shape[ax..]), 1)
                } else {
                    (numel(&shape[..ax]), shape[ax], numel(&shape[ax + 1..]))
                };
                let mut want = vec![0f32; 60];
                for o in 0..outer {
                    for i in 0..inner {
                        let at = |j: usize| (o * n + j) * inner + i;
                        let max = (0..n).map(|j| x[at(j)] as f64).fold(f64::MIN, f64::max);
                        let sum: f64 = (0..n).map(|j| (x[at(j)] as f64 - max).exp()).sum();
                        for j in 0..n {
                            let e = x[at(j)] as f64 - max;
                            want[at(j)] = if log { e - sum.ln() } else { e.exp() / sum } as f32;
                        }
                    }
                }
                let op = Op::Softmax { axis, log, legacy };
                let outs = run(&op, vec![Some(t(&shape, x.clone()))]);
                assert_close(outs[0].f32s().unwrap(), &want, 1e-5, &format!("{op:?}"));
            }
        }
    }
    let big = t(&[1, 3], vec![1000.0, 1001.0, 1002.0]);
    let outs = run(&Op::Softmax { axis: -1, log: false, legacy: false }, vec![Some(big.cast(DType::F16))]);
    assert_eq!(outs[0].dtype(), DType::F16);
    let got: Vec<f32> = outs[0].to_f64_vec().iter().map(|&v| v as f32).collect();
    assert_close(&got, &[0.09003057, 0.24472847, 0.66524096], 1e-3, "large f16");
}

/// Runs the ONNX backend node cases of this family found under /tmp/nodetests/node (skipped when
/// absent) and prints which pass: `cargo test --lib ops::nn -- --ignored --nocapture`.
#[test]
#[ignore]
fn node_suite_cases() {
    let root = std::path::Path::new("/tmp/nodetests/node");
    let Ok(dir) = std::fs::read_dir(root) else { return };
    let prefixes = [
        "test_conv",
        "test_basic_conv",
        "test_convtranspose",
        "test_maxpool",
        "test_averagepool",
        "test_globalaverage",
        "test_globalmax",
        "test_softmax",
        "test_logsoftmax",
        "test_layer_normalization",
        "test_batchnorm",
        "test_gemm",
        "test_matmul_",
        "test_quantizelinear",
        "test_dequantizelinear",
    ];
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| prefixes.iter().any(|p| n.starts_with(p)) && !n.contains("_expanded"))
        .collect();
    names.sort();
    let (mut pass, mut fail) = (vec![], vec![]);
    for name in names {
        match node_case(&root.join(&name)) {
            Ok(()) => pass.push(name),
            Err(e) => fail.push(format!("{name}: {e:#}")),
        }
    }
    println!("PASS {}: {}", pass.len(), pass.join(" "));
    println!("FAIL {}:\n{}", fail.len(), fail.join("\n"));
}

fn node_case(dir: &std::path::Path) -> anyhow::Result<()> {
    let g = crate::onnx::load(&dir.join("model.onnx"))?;
    let data = dir.join("test_data_set_0");
    let mut inputs = vec![];
    let mut wants = vec![];
    for i in 0.. {
        let p = data.join(format!("input_{i}.pb"));
        if !p.exists() {
            break;
        }
        inputs.push(crate::onnx::read_tensor_pb(&p)?.1);
    }
    for i in 0.. {
        let p = data.join(format!("output_{i}.pb"));
        if !p.exists() {
            break;
        }
        wants.push(crate::onnx::read_tensor_pb(&p)?.1);
    }
    let rt = crate::runtime::Runtime::new(g, Default::default())?;
    let n_in = rt.input_names().len();
    let outs = rt.run(inputs.into_iter().take(n_in).collect())?;
    for (i, (o, w)) in outs.iter().zip(&wants).enumerate() {
        if o.shape() != w.shape() || o.dtype() != w.dtype() {
            anyhow::bail!("output {i}: got {:?}, want {:?}", o, w);
        }
        for (j, (a, b)) in o.to_f64_vec().iter().zip(w.to_f64_vec()).enumerate() {
            if (a - b).abs() > 1e-5 + 1e-3 * b.abs() {
                anyhow::bail!("output {i} element {j}: got {a}, want {b}");
            }
        }
    }
    Ok(())
}
