//! Single-precision GEMM on top of the `gemm` crate.

use crate::{SendPtr, threads_for};
use gemm::Parallelism;
use rayon::prelude::*;

/// Required slice length for a `rows × cols` matrix with strides `rs`, `cs`.
fn span(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 { 0 } else { (rows - 1) * rs + (cols - 1) * cs + 1 }
}

fn parallelism(threads: usize) -> Parallelism {
    if threads <= 1 { Parallelism::None } else { Parallelism::Rayon(threads) }
}

/// Low-level strided GEMM: `C = alpha * A·B + beta * C` where every matrix is
/// given by pointer + (row stride, col stride) in elements.
///
/// # Safety
/// All pointers must be valid for the given extents, `c` must not alias `a`
/// or `b`, and distinct `(i, j)` of `C` must address distinct elements.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_strided(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    b_rs: usize,
    b_cs: usize,
    beta: f32,
    c: *mut f32,
    c_rs: usize,
    c_cs: usize,
    threads: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 || alpha == 0.0 {
        // C = beta * C (BLAS semantics: beta == 0 overwrites).
        for i in 0..m {
            for j in 0..n {
                // SAFETY: in bounds per the caller's contract.
                unsafe {
                    let p = c.add(i * c_rs + j * c_cs);
                    *p = if beta == 0.0 { 0.0 } else { beta * *p };
                }
            }
        }
        return;
    }
    // SAFETY: forwarded caller contract. gemm computes dst = a*dst + b*lhs*rhs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            c_cs as isize,
            c_rs as isize,
            beta != 0.0,
            a,
            a_cs as isize,
            a_rs as isize,
            b,
            b_cs as isize,
            b_rs as isize,
            beta,
            alpha,
            false,
            false,
            false,
            parallelism(threads),
        )
    }
}

/// `C = alpha * op(A) · op(B) + beta * C`, row-major with leading dimensions.
///
/// `op(A)` is `m × k`: `A` is stored `m × k` (`lda ≥ k`) or, with `trans_a`,
/// `k × m` (`lda ≥ m`). Likewise `op(B)` is `k × n`. `C` is `m × n` with
/// `ldc ≥ n`. With `beta == 0` the previous contents of `C` are ignored
/// (NaNs included). Multi-threaded on the current rayon pool for large
/// problems.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    trans_a: bool,
    b: &[f32],
    ldb: usize,
    trans_b: bool,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    let (a_rs, a_cs) = if trans_a { (1, lda) } else { (lda, 1) };
    let (b_rs, b_cs) = if trans_b { (1, ldb) } else { (ldb, 1) };
    assert!(a.len() >= span(m, k, a_rs, a_cs), "sgemm: A too short");
    assert!(b.len() >= span(k, n, b_rs, b_cs), "sgemm: B too short");
    assert!(c.len() >= span(m, n, ldc, 1), "sgemm: C too short");
    assert!(m <= 1 || ldc >= n, "sgemm: ldc < n");
    if m * n * k <= SMALL_MACS && m > 0 && n > 0 {
        small_gemm(m, n, k, alpha, a, a_rs, a_cs, b, ldb, trans_b, beta, c, ldc);
        return;
    }
    let threads = threads_for((m * n * k) as u64);
    // SAFETY: extents checked above; `c` is a unique borrow so no aliasing.
    unsafe {
        gemm_strided(
            m,
            n,
            k,
            alpha,
            a.as_ptr(),
            a_rs,
            a_cs,
            b.as_ptr(),
            b_rs,
            b_cs,
            beta,
            c.as_mut_ptr(),
            ldc,
            1,
            threads,
        )
    }
}

/// Problems up to this many multiply-accumulates use [`small_gemm`], which
/// avoids the `gemm` crate's dispatch and packing overhead.
const SMALL_MACS: usize = 1 << 16;

/// Direct kernel for small problems: row-wise axpy (`B` not transposed) or
/// dot products (`B` transposed), vectorised via runtime dispatch.
#[allow(clippy::too_many_arguments)]
fn small_gemm(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    ldb: usize,
    trans_b: bool,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::has_avx512() {
            // SAFETY: avx512f checked at runtime.
            return unsafe {
                small_gemm_avx512(m, n, k, alpha, a, a_rs, a_cs, b, ldb, trans_b, beta, c, ldc)
            };
        }
        if crate::has_avx2() {
            // SAFETY: avx2+fma checked at runtime.
            return unsafe { small_gemm_avx2(m, n, k, alpha, a, a_rs, a_cs, b, ldb, trans_b, beta, c, ldc) };
        }
    }
    small_gemm_impl(m, n, k, alpha, a, a_rs, a_cs, b, ldb, trans_b, beta, c, ldc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn small_gemm_avx512(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    ldb: usize,
    trans_b: bool,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    small_gemm_impl(m, n, k, alpha, a, a_rs, a_cs, b, ldb, trans_b, beta, c, ldc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn small_gemm_avx2(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    ldb: usize,
    trans_b: bool,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    small_gemm_impl(m, n, k, alpha, a, a_rs, a_cs, b, ldb, trans_b, beta, c, ldc)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn small_gemm_impl(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    ldb: usize,
    trans_b: bool,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    for i in 0..m {
        let crow = &mut c[i * ldc..i * ldc + n];
        if trans_b {
            for (j, cv) in crow.iter_mut().enumerate() {
                let brow = &b[j * ldb..j * ldb + k];
                let mut acc = [0.0f32; 16];
                let mut p = 0;
                while p + 16 <= k {
                    for l in 0..16 {
                        acc[l] += a[i * a_rs + (p + l) * a_cs] * brow[p + l];
                    }
                    p += 16;
                }
                let mut s: f32 = acc.iter().sum();
                for (q, bv) in brow.iter().enumerate().skip(p) {
                    s += a[i * a_rs + q * a_cs] * bv;
                }
                *cv = if beta == 0.0 { alpha * s } else { alpha * s + beta * *cv };
            }
        } else {
            if beta == 0.0 {
                crow.fill(0.0);
            } else if beta != 1.0 {
                crow.iter_mut().for_each(|v| *v *= beta);
            }
            for p in 0..k {
                let av = alpha * a[i * a_rs + p * a_cs];
                let brow = &b[p * ldb..p * ldb + n];
                for (cv, bv) in crow.iter_mut().zip(brow) {
                    *cv += av * bv;
                }
            }
        }
    }
}

/// Batched matmul: for `i in 0..batch` (`batch = a_offsets.len()`),
/// `C_i (m×n) = A_i (m×k) · B_i (k×n)` where `A_i` starts at
/// `a[a_offsets[i]..]` (row-major, contiguous), and likewise for `B_i`, `C_i`.
///
/// Broadcasting is expressed by repeating offsets in `a_offsets` /
/// `b_offsets`. The `C_i` regions must not overlap (checked). Parallelises
/// across the batch when it is large and each product small, otherwise inside
/// each product.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_batched(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_offsets: &[usize],
    b: &[f32],
    b_offsets: &[usize],
    c: &mut [f32],
    c_offsets: &[usize],
) {
    let batch = a_offsets.len();
    assert_eq!(b_offsets.len(), batch, "sgemm_batched: b_offsets length");
    assert_eq!(c_offsets.len(), batch, "sgemm_batched: c_offsets length");
    if batch == 0 || m == 0 || n == 0 {
        return;
    }
    for i in 0..batch {
        assert!(a_offsets[i] + m * k <= a.len(), "sgemm_batched: A_{i} out of bounds");
        assert!(b_offsets[i] + k * n <= b.len(), "sgemm_batched: B_{i} out of bounds");
        assert!(c_offsets[i] + m * n <= c.len(), "sgemm_batched: C_{i} out of bounds");
    }
    let mut sorted = c_offsets.to_vec();
    sorted.sort_unstable();
    assert!(sorted.windows(2).all(|w| w[1] - w[0] >= m * n), "sgemm_batched: output matrices overlap");
    let per = (m * n * k) as u64;
    let total_threads = threads_for(per * batch as u64);
    let cp = SendPtr(c.as_mut_ptr());
    let run = |i: usize, threads: usize| {
        // SAFETY: bounds checked above; output regions are disjoint.
        unsafe {
            gemm_strided(
                m,
                n,
                k,
                1.0,
                a.as_ptr().add(a_offsets[i]),
                k,
                1,
                b.as_ptr().add(b_offsets[i]),
                n,
                1,
                0.0,
                cp.get().add(c_offsets[i]),
                n,
                1,
                threads,
            )
        }
    };
    // Split across the batch unless each product alone is big enough to
    // keep every thread busy.
    if total_threads > 1 && batch >= 2 && per < (1 << 21) {
        (0..batch)
            .into_par_iter()
            .with_min_len((crate::PAR_MIN_MACS / per.max(1)).max(1) as usize)
            .for_each(|i| run(i, 1));
    } else {
        let t = threads_for(per);
        for i in 0..batch {
            run(i, t);
        }
    }
}
