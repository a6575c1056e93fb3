//! MatMul (numpy semantics: 1-D promotion, broadcast batch dims) and Gemm.

use super::{f32_data, f32_tensor, kernel_act, shape_str};
use crate::ir::{Dim, Fact, Gemm, broadcast_concrete, broadcast_shapes};
use crate::ops::{fact_at, tensor_at};
use crate::tensor::{DType, Tensor, numel, strides};
use anyhow::{Result, bail};

/// MatMul shape inference.
pub(super) fn infer_matmul(inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
    let (a, b) = (fact_at(inputs, 0)?, fact_at(inputs, 1)?);
    if a.rank() == 0 || b.rank() == 0 {
        bail!("MatMul needs inputs of rank at least 1, got {a} and {b}");
    }
    if a.dtype != b.dtype || a.dtype == DType::Bool {
        bail!("MatMul needs two numeric inputs of the same type, got {a} and {b}");
    }
    let (ar, br) = (a.rank(), b.rank());
    let ka = &a.shape[ar - 1];
    let kb = if br == 1 { &b.shape[0] } else { &b.shape[br - 2] };
    if let (Some(x), Some(y)) = (ka.known(), kb.known())
        && x != y
    {
        bail!("MatMul inner dims differ: {} has {x} columns, {} has {y} rows", a, b);
    }
    let ab = if ar > 2 { &a.shape[..ar - 2] } else { &[][..] };
    let bb = if br > 2 { &b.shape[..br - 2] } else { &[][..] };
    let Some(mut shape) = broadcast_shapes(&[ab, bb]) else {
        bail!("MatMul batch dims of {a} and {b} do not broadcast");
    };
    if ar > 1 {
        shape.push(a.shape[ar - 2].clone());
    }
    if br > 1 {
        shape.push(b.shape[br - 1].clone());
    }
    Ok(vec![Fact::new(a.dtype, shape)])
}

/// Concrete MatMul plan: (m, k, n, output shape, a offsets, b offsets) per batch matrix.
struct Plan {
    m: usize,
    k: usize,
    n: usize,
    out: Vec<usize>,
    a_off: Vec<usize>,
    b_off: Vec<usize>,
    /// True when all batches of A share one B and A is not broadcast (one big GEMM).
    flat: bool,
}

fn plan(a: &[usize], b: &[usize]) -> Result<Plan> {
    if a.is_empty() || b.is_empty() {
        bail!("MatMul needs inputs of rank at least 1, got {} and {}", shape_str(a), shape_str(b));
    }
    let (m, k) = if a.len() == 1 { (1, a[0]) } else { (a[a.len() - 2], a[a.len() - 1]) };
    let (kb, n) = if b.len() == 1 { (b[0], 1) } else { (b[b.len() - 2], b[b.len() - 1]) };
    if k != kb {
        bail!("MatMul inner dims differ: {} has {k} columns, {} has {kb} rows", shape_str(a), shape_str(b));
    }
    let ab = &a[..a.len().saturating_sub(2)];
    let bb = &b[..b.len().saturating_sub(2)];
    let Some(batch) = broadcast_concrete(&[ab, bb]) else {
        bail!("MatMul batch dims of {} and {} do not broadcast", shape_str(a), shape_str(b));
    };
    let mut out = batch.clone();
    if a.len() > 1 {
        out.push(m);
    }
    if b.len() > 1 {
        out.push(n);
    }
    let nb = numel(&batch);
    let flat = numel(bb) == 1 && numel(ab) == nb;
    let offsets = |src: &[usize], mat: usize| -> Vec<usize> {
        let r = batch.len();
        let mut padded = vec![1; r - src.len()];
        padded.extend_from_slice(src);
        let st = strides(&padded);
        let ost = strides(&batch);
        (0..nb)
            .map(|i| {
                (0..r)
                    .map(|d| if padded[d] == 1 { 0 } else { (i / ost[d]) % batch[d] * st[d] })
                    .sum::<usize>()
                    * mat
            })
            .collect()
    };
    let (a_off, b_off) = if flat { (vec![], vec![]) } else { (offsets(ab, m * k), offsets(bb, k * n)) };
    Ok(Plan { m, k, n, out, a_off, b_off, flat })
}

/// MatMul evaluation: f32/f16 through the sgemm kernels, other types with a plain f64 loop.
pub(super) fn eval_matmul(inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
    let (a, b) = (tensor_at(inputs, 0)?, tensor_at(inputs, 1)?);
    if a.dtype() != b.dtype() {
        bail!("MatMul inputs differ in type: {} and {}", a.dtype(), b.dtype());
    }
    let p = plan(a.shape(), b.shape())?;
    let (m, k, n) = (p.m, p.k, p.n);
    let total = numel(&p.out);
    if matches!(a.dtype(), DType::F32 | DType::F16) {
        let (af, bf) = (f32_data(a)?, f32_data(b)?);
        let mut c = vec![0f32; total];
        if k > 0 && total > 0 {
            if p.flat {
                let rows = total / n;
                pare_kernels::sgemm(rows, n, k, 1.0, &af, k, false, &bf, n, false, 0.0, &mut c, n);
            } else {
                let c_off: Vec<usize> = (0..p.a_off.len()).map(|i| i * m * n).collect();
                pare_kernels::sgemm_batched(m, n, k, &af, &p.a_off, &bf, &p.b_off, &mut c, &c_off);
            }
        }
        return Ok(vec![f32_tensor(p.out, c, a.dtype())]);
    }
    let (av, bv) = (a.to_f64_vec(), b.to_f64_vec());
    let batches = if p.flat { 1 } else { p.a_off.len() };
    let rows = if p.flat { total / n.max(1) } else { m };
    let mut c = vec![0f64; total];
    for bi in 0..batches {
        let (ao, bo) = if p.flat { (0, 0) } else { (p.a_off[bi], p.b_off[bi]) };
        let co = bi * m * n;
        for i in 0..rows {
            for kk in 0..k {
                let x = av[ao + i * k + kk];
                let brow = &bv[bo + kk * n..bo + (kk + 1) * n];
                for (cv, &y) in c[co + i * n..co + (i + 1) * n].iter_mut().zip(brow) {
                    *cv += x * y;
                }
            }
        }
    }
    Ok(vec![Tensor::from_vec(p.out, c).cast(a.dtype())])
}

/// Gemm shape inference: A [M,K] (or [K,M]), B [K,N] (or [N,K]), C broadcastable to [M,N].
pub(super) fn infer_gemm(g: &Gemm, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
    let (a, b) = (fact_at(inputs, 0)?, fact_at(inputs, 1)?);
    if a.rank() != 2 || b.rank() != 2 {
        bail!("Gemm needs 2-D inputs, got A {a} and B {b}");
    }
    let (m, ka) = if g.trans_a { (&a.shape[1], &a.shape[0]) } else { (&a.shape[0], &a.shape[1]) };
    let (kb, n) = if g.trans_b { (&b.shape[1], &b.shape[0]) } else { (&b.shape[0], &b.shape[1]) };
    if let (Some(x), Some(y)) = (ka.known(), kb.known())
        && x != y
    {
        bail!("Gemm inner dims differ: A {a} (trans_a {}) and B {b} (trans_b {})", g.trans_a, g.trans_b);
    }
    if let Some(c) = inputs.get(2).copied().flatten() {
        let target = [m.clone(), n.clone()];
        let ok = c.rank() <= 2
            && c.shape.iter().rev().zip(target.iter().rev()).all(|(cd, td)| match (cd.known(), td.known()) {
                (Some(1), _) => true,
                (Some(x), Some(y)) => x == y,
                _ => true,
            });
        if !ok {
            bail!("Gemm bias C {c} does not broadcast to [{m},{n}]");
        }
    }
    let out: Vec<Dim> = vec![m.clone(), n.clone()];
    Ok(vec![Fact::new(a.dtype, out)])
}

/// Gemm evaluation: `beta * C` is broadcast into the output, then sgemm accumulates into it.
pub(super) fn eval_gemm(g: &Gemm, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
    let (a, b) = (tensor_at(inputs, 0)?, tensor_at(inputs, 1)?);
    let (as_, bs) = (a.shape(), b.shape());
    if as_.len() != 2 || bs.len() != 2 {
        bail!("Gemm needs 2-D inputs, got A {} and B {}", shape_str(as_), shape_str(bs));
    }
    let (m, k) = if g.trans_a { (as_[1], as_[0]) } else { (as_[0], as_[1]) };
    let (kb, n) = if g.trans_b { (bs[1], bs[0]) } else { (bs[0], bs[1]) };
    if k != kb {
        bail!("Gemm inner dims differ: A {} and B {}", shape_str(as_), shape_str(bs));
    }
    let mut out = vec![0f32; m * n];
    let mut beta = 0.0;
    if let Some(c) = inputs.get(2).and_then(|t| t.as_ref())
        && g.beta != 0.0
    {
        fill_bias(&mut out, c, m, n, g.beta)?;
        beta = 1.0;
    }
    let (af, bf) = (f32_data(a)?, f32_data(b)?);
    if k > 0 && m * n > 0 {
        pare_kernels::sgemm(
            m, n, k, g.alpha, &af, as_[1], g.trans_a, &bf, bs[1], g.trans_b, beta, &mut out, n,
        );
    }
    kernel_act(g.act).apply_slice(&mut out);
    Ok(vec![f32_tensor(vec![m, n], out, a.dtype())])
}

/// Writes `beta * C` broadcast to [m, n] into `out`.
fn fill_bias(out: &mut [f32], c: &Tensor, m: usize, n: usize, beta: f32) -> Result<()> {
    let cs = c.shape();
    let (cm, cn) = match cs.len() {
        0 => (1, 1),
        1 => (1, cs[0]),
        2 => (cs[0], cs[1]),
        _ => bail!("Gemm bias C {} must have rank at most 2", shape_str(cs)),
    };
    if !(cm == 1 || cm == m) || !(cn == 1 || cn == n) {
        bail!("Gemm bias C {} does not broadcast to [{m},{n}]", shape_str(cs));
    }
    let cf = f32_data(c)?;
    for (i, row) in out.chunks_mut(n.max(1)).enumerate().take(m) {
        let ci = if cm == 1 { 0 } else { i * cn };
        if cn == 1 {
            row.fill(beta * cf[ci]);
        } else {
            for (o, &v) in row.iter_mut().zip(&cf[ci..ci + n]) {
                *o = beta * v;
            }
        }
    }
    Ok(())
}
