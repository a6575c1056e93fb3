//! GEMM with one constant, pre-packed operand (weights), fused epilogue.
//!
//! * [`PackedA`] + [`gemm_packed_a`]: `C[m×n] = A·B (+ C) + bias[row]`, then an
//!   activation, where `A[m×k]` is constant (conv weights) and `B[k×n]` is read
//!   in place from a row-major buffer (activations, `n` = spatial positions).
//! * [`PackedB`] + [`gemm_packed_b`]: `Y[m×n] = X·B + bias[col]`, then an
//!   activation, where `B[k×n]` is constant (fully-connected weights) and `m` is
//!   usually small (batch); `m == 1` runs a dedicated GEMV.
//!
//! Layout: `A` is packed into panels of [`MR`] rows, k-major inside a panel
//! (`panel[p * rows + i]`); the last panel holds the remaining rows only. `B`
//! operands that are packed (constant `B`, im2col tiles) use panels of [`NR`]
//! columns, k-major (`panel[p * NR + j]`). The same layout serves every
//! instruction set: the AVX-512 microkernel computes up to `8 × 48` per call
//! (24 zmm accumulators), the AVX2 one `4 × 24` (12 ymm accumulators), so a
//! packed operand stays valid when the ISA cap changes after packing.

use crate::act::{Act, bias_act};
use crate::isa::{Isa, isa};
use crate::{SendPtr, threads_for, with_scratch};
use rayon::prelude::*;

/// Rows per packed `A` panel.
pub(crate) const MR: usize = 8;
/// Columns per packed `B` panel (and per microkernel call).
pub(crate) const NR: usize = 48;
/// Largest K block: an `A` micro-panel of `KC × MR` floats stays in L1 while
/// the `B` block of `KC ×` (task columns) stays in L2.
const KC_MAX: usize = 640;
/// Most columns per task.
const NC_MAX: usize = 480;
/// Bytes of a `B` block (`KC ×` task columns) meant to stay in L2.
const L2_BLOCK: usize = 1 << 20;
/// Fixed cost of a task, in columns.
const CHUNK_OVERHEAD: usize = 32;

/// Constant left operand `A[m×k]`, packed once into [`MR`]-row panels.
#[derive(Clone, Debug)]
pub struct PackedA {
    m: usize,
    k: usize,
    isa: Isa,
    data: Vec<f32>,
}

impl PackedA {
    /// Packs the row-major `m × k` matrix `a` (`a.len() >= m * k`).
    pub fn new(m: usize, k: usize, a: &[f32]) -> PackedA {
        assert!(a.len() >= m * k, "PackedA: a too short");
        let mut data = vec![0.0; m * k];
        pack_a(m, k, a, k, 1, &mut data);
        PackedA { m, k, isa: isa(), data }
    }

    /// Rows of `A`.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Columns of `A` (the reduction length).
    pub fn k(&self) -> usize {
        self.k
    }

    /// The instruction set active when the matrix was packed. The panel
    /// layout is shared by all microkernels, so products run on the ISA
    /// active at call time.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The matrix back in row-major order.
    pub fn unpack(&self) -> Vec<f32> {
        let (m, k) = (self.m, self.k);
        let mut out = vec![0.0; m * k];
        for r0 in (0..m).step_by(MR) {
            let rows = MR.min(m - r0);
            let panel = &self.data[r0 * k..r0 * k + rows * k];
            for p in 0..k {
                for i in 0..rows {
                    out[(r0 + i) * k + p] = panel[p * rows + i];
                }
            }
        }
        out
    }

    pub(crate) fn view(&self) -> AView {
        AView { data: self.data.as_ptr(), m: self.m, k: self.k, ld: 0 }
    }
}

/// Packs `A` (element `(i, p)` at `src[i * rs + p * cs]`) into `dst`
/// (`m * k` floats) as [`MR`]-row panels.
fn pack_a(m: usize, k: usize, src: &[f32], rs: usize, cs: usize, dst: &mut [f32]) {
    for r0 in (0..m).step_by(MR) {
        let rows = MR.min(m - r0);
        let panel = &mut dst[r0 * k..r0 * k + rows * k];
        for i in 0..rows {
            let base = (r0 + i) * rs;
            for p in 0..k {
                panel[p * rows + i] = src[base + p * cs];
            }
        }
    }
}

/// Borrowed view of the left operand: packed [`MR`]-row panels (`ld == 0`,
/// owned by a [`PackedA`]) or a row-major matrix read in place (row stride
/// `ld`).
#[derive(Clone, Copy)]
pub(crate) struct AView {
    data: *const f32,
    m: usize,
    k: usize,
    ld: usize,
}

// SAFETY: read-only view; the owner outlives every task using it.
unsafe impl Send for AView {}
// SAFETY: as above.
unsafe impl Sync for AView {}

impl AView {
    fn panels(&self) -> usize {
        self.m.div_ceil(MR)
    }
}

/// Where a block reads its `B` operand from.
#[derive(Clone, Copy)]
pub(crate) enum BSrc {
    /// Row-major, row stride `ldb`, pointer at column 0 of the block.
    Rows {
        /// Element `(0, 0)` of the block.
        ptr: *const f32,
        /// Row stride.
        ldb: usize,
    },
    /// [`NR`]-column panels of the full reduction length `k`
    /// (`panel j` at `ptr + j * k * NR`), pointer at the block's first panel.
    /// With `compact`, the block's last panel has the row stride of its
    /// actual width instead of [`NR`].
    Panels {
        /// First panel of the block.
        ptr: *const f32,
        /// Compact last panel.
        compact: bool,
    },
}

// SAFETY: read-only pointers into buffers that outlive the tasks.
unsafe impl Send for BSrc {}
// SAFETY: as above.
unsafe impl Sync for BSrc {}

/// Epilogue of a product: `C = act(A·B (+ C_old) + bias_row[i] + bias_col[j])`.
#[derive(Clone, Copy)]
pub(crate) struct Epi {
    /// Add the previous contents of `C`.
    pub accumulate: bool,
    /// Bias per row, indexed by the row of `A` (null: none).
    pub bias_row: *const f32,
    /// Bias per column, indexed from the block's first column (null: none).
    pub bias_col: *const f32,
    /// Activation.
    pub act: Act,
}

impl Epi {
    /// The epilogue of a block starting at column `n0`.
    fn col_offset(self, n0: usize) -> Epi {
        let bc = self.bias_col;
        Epi { bias_col: if bc.is_null() { bc } else { bc.wrapping_add(n0) }, ..self }
    }
}

// SAFETY: read-only pointers into buffers that outlive the tasks.
unsafe impl Send for Epi {}
// SAFETY: as above.
unsafe impl Sync for Epi {}

/// One microkernel call: `rows × nr` of `C` (rows ≤ [`MR`], `nr` ≤ [`NR`]).
#[derive(Clone, Copy)]
struct Tile {
    k: usize,
    /// `A` at (row 0, k-step 0); rows are `a_rs` floats apart, k-steps
    /// `a_cs` (packed panel: 1 and the panel's row count).
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    /// `B` at (k-step 0, column 0); k-steps are `ldb` floats apart.
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    nr: usize,
    load_c: bool,
    bias_row: *const f32,
    bias_col: *const f32,
    act: Act,
}

impl Tile {
    /// The sub-tile at row `i0`, column `j0` (same k range).
    #[cfg(target_arch = "x86_64")]
    fn sub(&self, i0: usize, j0: usize, nr: usize) -> Tile {
        // wrapping_add: the pointers may be null (no bias) or, for the
        // columns, point past the end of a too short panel; they are only
        // dereferenced for valid rows and columns.
        Tile {
            a: self.a.wrapping_add(i0 * self.a_rs),
            b: self.b.wrapping_add(j0),
            c: self.c.wrapping_add(i0 * self.ldc + j0),
            nr,
            bias_row: if self.bias_row.is_null() { self.bias_row } else { self.bias_row.wrapping_add(i0) },
            bias_col: if self.bias_col.is_null() { self.bias_col } else { self.bias_col.wrapping_add(j0) },
            ..*self
        }
    }
}

/// Activations computed outside the registers (after the tile is stored).
#[inline]
fn act_needs_post(act: Act) -> bool {
    matches!(act, Act::Sigmoid)
}

/// Applies a post-store activation to the stored tile.
///
/// # Safety
/// `t.c` must address `rows × t.nr` valid floats with stride `t.ldc`.
unsafe fn post_act(t: &Tile, rows: usize) {
    for i in 0..rows {
        // SAFETY: per the contract.
        let row = unsafe { std::slice::from_raw_parts_mut(t.c.add(i * t.ldc), t.nr) };
        bias_act(row, 0.0, t.act);
    }
}

/// Runs one tile of `rows` rows on `isa`.
///
/// # Safety
/// The tile's pointers must be valid for `rows × nr` (C), `k × rows` (A) and
/// `k × nr` (B) as described on [`Tile`], and the ISA must be available.
#[inline]
unsafe fn run_tile(isa: Isa, rows: usize, t: &Tile) {
    // SAFETY: forwarded.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::tile512(rows, t),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::tile256(rows, t),
            _ => tile_scalar(rows, t),
        }
    }
}

/// K-block split of a reduction of length `k`: (block count, block length).
#[inline]
fn k_blocks(k: usize) -> (usize, usize) {
    let nk = k.div_ceil(KC_MAX).max(1);
    (nk, k.div_ceil(nk))
}

/// `C` rows of panels `q0..q1`, columns `0..nc` of the block.
///
/// `c` points at row 0 (of the whole `A`), column 0 of the block; `ep.bias_row`
/// at row 0 of `A`, `ep.bias_col` at the block's column 0.
///
/// # Safety
/// All pointers must be valid for the block; `isa` must be available.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_block(
    isa: Isa,
    a: AView,
    q0: usize,
    q1: usize,
    b: BSrc,
    nc: usize,
    c: *mut f32,
    ldc: usize,
    ep: Epi,
) {
    let k = a.k;
    let (nk, kc) = k_blocks(k);
    let post = act_needs_post(ep.act);
    for kb in 0..nk {
        let k0 = kb * kc;
        let kl = kc.min(k - k0);
        let last = kb + 1 == nk;
        let nj = nc.div_ceil(NR);
        // The A micro-panel (≤ KC × 8 floats) stays in L1 across the row of
        // tiles; the B block (KC × nc) stays in L2 across the panels.
        for q in q0..q1 {
            let r0 = q * MR;
            let rows = MR.min(a.m - r0);
            for j in 0..nj {
                let nr = NR.min(nc - j * NR);
                let (bp, ldb) = match b {
                    BSrc::Rows { ptr, ldb } => (ptr.wrapping_add(j * NR + k0 * ldb), ldb),
                    BSrc::Panels { ptr, compact } => {
                        let w = if compact && j + 1 == nj { nr } else { NR };
                        (ptr.wrapping_add(j * k * NR + k0 * w), w)
                    }
                };
                let t = Tile {
                    k: kl,
                    a: if a.ld == 0 {
                        a.data.wrapping_add(r0 * k + k0 * rows)
                    } else {
                        a.data.wrapping_add(r0 * a.ld + k0)
                    },
                    a_rs: if a.ld == 0 { 1 } else { a.ld },
                    a_cs: if a.ld == 0 { rows } else { 1 },
                    b: bp,
                    ldb,
                    c: c.wrapping_add(r0 * ldc + j * NR),
                    ldc,
                    nr,
                    load_c: ep.accumulate || kb > 0,
                    bias_row: if last && !ep.bias_row.is_null() {
                        ep.bias_row.wrapping_add(r0)
                    } else {
                        std::ptr::null()
                    },
                    bias_col: if last && !ep.bias_col.is_null() {
                        ep.bias_col.wrapping_add(j * NR)
                    } else {
                        std::ptr::null()
                    },
                    act: if last { ep.act } else { Act::None },
                };
                // SAFETY: forwarded caller contract.
                unsafe {
                    run_tile(isa, rows, &t);
                    if last && post {
                        post_act(&t, rows);
                    }
                }
            }
        }
    }
}

/// Copies `B` columns `0..nc` (row-major, stride `ldb`, `k` rows) into
/// [`NR`]-column panels (`dst`: at least `k * nc.next_multiple_of(NR)`
/// floats). The last panel has row stride `NR` with zeroed padding columns,
/// or, with `compact`, the stride of its actual width.
///
/// # Safety
/// `src` must be valid for `k` rows of `nc` floats at stride `ldb`.
pub(crate) unsafe fn pack_b(
    src: *const f32,
    ldb: usize,
    k: usize,
    nc: usize,
    dst: &mut [f32],
    compact: bool,
) {
    let panels = nc.div_ceil(NR);
    let tail = nc - (panels - 1) * NR;
    let tw = if compact { tail } else { NR };
    assert!(dst.len() >= (panels - 1) * k * NR + k * tw);
    #[cfg(target_arch = "x86_64")]
    {
        if crate::has_avx512() {
            // SAFETY: avx512f available; extents per the contract and the
            // assertion above.
            return unsafe { x86::pack_b512(src, ldb, k, panels, tail, tw, dst.as_mut_ptr()) };
        }
    }
    // Row by row: each source row is read contiguously (prefetch friendly).
    for p in 0..k {
        // SAFETY: in bounds per the contract.
        let s = unsafe { std::slice::from_raw_parts(src.add(p * ldb), nc) };
        for j in 0..panels - 1 {
            dst[j * k * NR + p * NR..][..NR].copy_from_slice(&s[j * NR..(j + 1) * NR]);
        }
        let d = &mut dst[(panels - 1) * k * NR + p * tw..][..tw];
        d[..tail].copy_from_slice(&s[(panels - 1) * NR..]);
        d[tail..].fill(0.0);
    }
}

/// Work split of a product with `jobs` independent (image, group) products of
/// `n` columns and `panels` row panels each.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    /// Column chunks per job.
    pub n_chunks: usize,
    /// Columns per chunk (the last may be shorter).
    pub nc: usize,
    /// Row-panel groups per chunk.
    pub m_groups: usize,
    /// Panels per row group.
    pub qpg: usize,
}

impl Plan {
    /// Plans `jobs` products of `n` columns and `panels` row panels (reduction
    /// length `k`) over `threads` threads. Chunk widths are multiples of
    /// [`NR`] (or all of `n`), chosen to balance the threads and keep a
    /// `B` block in L2.
    pub(crate) fn new(jobs: usize, n: usize, panels: usize, threads: usize, k: usize) -> Plan {
        let (_, kc) = k_blocks(k);
        let nc_max = (L2_BLOCK / (4 * kc.max(1))).clamp(2 * NR, NC_MAX) / NR * NR;
        let threads = threads.max(1);
        let panels = panels.max(1);
        // Relative cost of a chunk `w` columns wide (16-lane vectors; narrow
        // tails run on the cheap column kernel).
        let width = |w: usize| {
            let rem = w % NR;
            w / NR * NR
                + match rem {
                    0 => 0,
                    1..=6 => 8,
                    _ => rem.next_multiple_of(16),
                }
        };
        let (mut best, mut best_cost) = ((n.max(1), 1), f64::INFINITY);
        let mut nc = NR.min(n.max(1));
        loop {
            let chunks = n.div_ceil(nc).max(1);
            let tasks = jobs * chunks;
            let mg = if tasks < threads { threads.div_ceil(tasks).min(panels) } else { 1 };
            let rows = panels.div_ceil(mg) as f64 / panels as f64;
            let per_task = width(nc) as f64 * rows + CHUNK_OVERHEAD as f64;
            let cost = (tasks * mg).div_ceil(threads) as f64 * per_task;
            if cost <= best_cost {
                (best, best_cost) = ((nc, mg), cost);
            }
            if nc >= n || nc + NR > nc_max {
                break;
            }
            nc = (nc + NR).min(n);
        }
        let (nc, mg) = best;
        let n_chunks = n.div_ceil(nc).max(1);
        let qpg = panels.div_ceil(mg);
        let m_groups = panels.div_ceil(qpg);
        Plan { n_chunks, nc, m_groups, qpg }
    }

    /// Tasks per job.
    pub(crate) fn tasks_per_job(&self) -> usize {
        self.n_chunks * self.m_groups
    }
}

/// Runs `f(task)` for `0..tasks`, in parallel when `threads > 1`.
pub(crate) fn run_tasks(tasks: usize, threads: usize, f: impl Fn(usize) + Sync + Send) {
    if threads > 1 && tasks > 1 {
        (0..tasks).into_par_iter().for_each(f);
    } else {
        (0..tasks).for_each(f);
    }
}

/// Whether to copy an in-place `B` block into panels before multiplying.
#[inline]
pub(crate) fn pack_b_pays(panels: usize) -> bool {
    // Measured: packing pays once the block is reused by four row panels
    // (rows of an in-place B are far apart: TLB misses, no prefetch across
    // pages).
    panels >= 4
}

/// Raw-pointer form of [`gemm_packed_a`].
///
/// # Safety
/// `b` must be valid for reads of `a.k()` rows of `n` floats at stride `ldb`;
/// `c` for reads and writes of `a.m()` rows of `n` floats at stride `ldc`, not
/// overlapping `b`; `bias` (if any) must hold `a.m()` values.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_packed_a_ptr(
    a: &PackedA,
    n: usize,
    b: *const f32,
    ldb: usize,
    bias: Option<&[f32]>,
    accumulate: bool,
    act: Act,
    c: *mut f32,
    ldc: usize,
) {
    let (m, k) = (a.m, a.k);
    if m == 0 || n == 0 {
        return;
    }
    let isa = isa();
    let threads = threads_for((m * n * k) as u64);
    let av = a.view();
    let panels = av.panels();
    let plan = Plan::new(1, n, panels, threads, k);
    let pack = k > 0 && pack_b_pays(plan.qpg);
    let ep = Epi {
        accumulate,
        bias_row: bias.map_or(std::ptr::null(), |b| b.as_ptr()),
        bias_col: std::ptr::null(),
        act,
    };
    let (bp, cp) = (SendPtr(b as *mut f32), SendPtr(c));
    run_tasks(plan.tasks_per_job(), threads, |t| {
        let (ci, mg) = (t / plan.m_groups, t % plan.m_groups);
        let n0 = ci * plan.nc;
        let nc = plan.nc.min(n - n0);
        let q0 = mg * plan.qpg;
        let q1 = (q0 + plan.qpg).min(panels);
        let bsrc = bp.get().wrapping_add(n0) as *const f32;
        let cblk = cp.get().wrapping_add(n0);
        if pack {
            with_scratch(k * nc.next_multiple_of(NR), |buf| {
                // SAFETY: caller contract; buf holds the packed block.
                unsafe {
                    pack_b(bsrc, ldb, k, nc, buf, true);
                    gemm_block(
                        isa,
                        av,
                        q0,
                        q1,
                        BSrc::Panels { ptr: buf.as_ptr(), compact: true },
                        nc,
                        cblk,
                        ldc,
                        ep,
                    )
                }
            })
        } else {
            // SAFETY: caller contract.
            unsafe { gemm_block(isa, av, q0, q1, BSrc::Rows { ptr: bsrc, ldb }, nc, cblk, ldc, ep) }
        }
    });
}

/// Required slice length for `rows` rows of `cols` floats at stride `ld`.
fn span(rows: usize, cols: usize, ld: usize) -> usize {
    if rows == 0 || cols == 0 { 0 } else { (rows - 1) * ld + cols }
}

/// `C = act(A·B (+ C) + bias[row])` with the constant `A` pre-packed.
///
/// `B` is `a.k() × n`, row-major with row stride `ldb` (read in place), `C`
/// is `a.m() × n` with row stride `ldc`. With `accumulate` the previous
/// contents of `C` are added before the bias and activation; otherwise they
/// are ignored. `bias` (length ≥ `a.m()`) is added per row. Parallel on the
/// current rayon pool for large products; no heap allocation in steady state.
#[allow(clippy::too_many_arguments)]
pub fn gemm_packed_a(
    a: &PackedA,
    n: usize,
    b: &[f32],
    ldb: usize,
    bias: Option<&[f32]>,
    accumulate: bool,
    act: Act,
    c: &mut [f32],
    ldc: usize,
) {
    assert!(n <= 1 || a.k <= 1 || ldb >= n, "gemm_packed_a: ldb < n");
    assert!(a.m <= 1 || ldc >= n, "gemm_packed_a: ldc < n");
    assert!(b.len() >= span(a.k, n, ldb), "gemm_packed_a: b too short");
    assert!(c.len() >= span(a.m, n, ldc), "gemm_packed_a: c too short");
    if let Some(bb) = bias {
        assert!(bb.len() >= a.m, "gemm_packed_a: bias too short");
    }
    // SAFETY: extents checked above; `c` is a unique borrow.
    unsafe { gemm_packed_a_ptr(a, n, b.as_ptr(), ldb, bias, accumulate, act, c.as_mut_ptr(), ldc) }
}

/// Constant right operand `B[k×n]`, packed once into [`NR`]-column panels
/// (zero-padded to a multiple of [`NR`] columns).
#[derive(Clone, Debug)]
pub struct PackedB {
    k: usize,
    n: usize,
    isa: Isa,
    data: Vec<f32>,
}

impl PackedB {
    /// Packs the row-major `k × n` matrix `b` (`b.len() >= k * n`).
    pub fn new(k: usize, n: usize, b: &[f32]) -> PackedB {
        assert!(b.len() >= k * n, "PackedB: b too short");
        let mut data = vec![0.0; k * n.next_multiple_of(NR)];
        if k > 0 && n > 0 {
            // SAFETY: b holds k rows of n floats.
            unsafe { pack_b(b.as_ptr(), n, k, n, &mut data, false) };
        }
        PackedB { k, n, isa: isa(), data }
    }

    /// Rows of `B` (the reduction length).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns of `B`.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The instruction set active when the matrix was packed (the layout is
    /// shared by all microkernels).
    pub fn isa(&self) -> Isa {
        self.isa
    }
}

/// `Y = act(X·B + bias[col])` with the constant `B` pre-packed.
///
/// `X` is `m × b.k()`, row-major with row stride `ldx`; `Y` is `m × b.n()` with
/// row stride `ldy` (previous contents ignored); `bias` (length ≥ `b.n()`) is
/// added per column. `m == 1` runs a GEMV. Parallel on the current rayon pool
/// for large products.
#[allow(clippy::too_many_arguments)]
pub fn gemm_packed_b(
    m: usize,
    x: &[f32],
    ldx: usize,
    b: &PackedB,
    bias: Option<&[f32]>,
    act: Act,
    y: &mut [f32],
    ldy: usize,
) {
    let threads = threads_for((m * b.n * b.k) as u64);
    gemm_packed_b_ex(m, x, ldx, b, bias, false, act, y, ldy, threads)
}

/// [`gemm_packed_b`] with `accumulate` (add the previous contents of `Y` before the bias and
/// activation) and an explicit thread count (1: inline on the caller's thread).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_packed_b_ex(
    m: usize,
    x: &[f32],
    ldx: usize,
    b: &PackedB,
    bias: Option<&[f32]>,
    accumulate: bool,
    act: Act,
    y: &mut [f32],
    ldy: usize,
    threads: usize,
) {
    let (k, n) = (b.k, b.n);
    assert!(m <= 1 || ldx >= k, "gemm_packed_b: ldx < k");
    assert!(m <= 1 || ldy >= n, "gemm_packed_b: ldy < n");
    assert!(x.len() >= span(m, k, ldx), "gemm_packed_b: x too short");
    assert!(y.len() >= span(m, n, ldy), "gemm_packed_b: y too short");
    if let Some(bb) = bias {
        assert!(bb.len() >= n, "gemm_packed_b: bias too short");
    }
    if m == 0 || n == 0 {
        return;
    }
    let isa = isa();
    let bias_col = bias.map_or(std::ptr::null(), |bb| bb.as_ptr());
    let yp = SendPtr(y.as_mut_ptr());
    if m == 1 && !accumulate {
        let bias_col = SendPtr(bias_col as *mut f32);
        let panels = n.div_ceil(NR);
        let per = if threads > 1 { panels.div_ceil(threads * 2).max(1) } else { panels };
        run_tasks(panels.div_ceil(per), threads, |t| {
            for j in t * per..((t + 1) * per).min(panels) {
                let nr = NR.min(n - j * NR);
                let bc = bias_col.get() as *const f32;
                let bc = if bc.is_null() { bc } else { bc.wrapping_add(j * NR) };
                // SAFETY: panel j holds k × NR floats; y has n floats; x has k.
                unsafe {
                    gemv_panel(
                        isa,
                        k,
                        x.as_ptr(),
                        b.data.as_ptr().add(j * k * NR),
                        nr,
                        yp.get().add(j * NR),
                        bc,
                        act,
                    )
                }
            }
        });
        return;
    }
    // X is read in place (the microkernel broadcasts from its rows).
    let av = AView { data: x.as_ptr(), m, k, ld: ldx };
    let panels = av.panels();
    let plan = Plan::new(1, n, panels, threads, k);
    let ep0 = Epi { accumulate, bias_row: std::ptr::null(), bias_col, act };
    let bdata = SendPtr(b.data.as_ptr() as *mut f32);
    run_tasks(plan.tasks_per_job(), threads, |t| {
        let (ci, mg) = (t / plan.m_groups, t % plan.m_groups);
        let n0 = ci * plan.nc;
        let nc = plan.nc.min(n - n0);
        let q0 = mg * plan.qpg;
        let q1 = (q0 + plan.qpg).min(panels);
        let ep = ep0.col_offset(n0);
        let bsrc = BSrc::Panels { ptr: bdata.get().wrapping_add((n0 / NR) * k * NR), compact: false };
        // SAFETY: n0 is a multiple of NR (chunks are); extents checked above.
        unsafe { gemm_block(isa, av, q0, q1, bsrc, nc, yp.get().wrapping_add(n0), ldy, ep) }
    });
}

/// `y[0..nr] = act(x · panel + bias)` for one zero-padded `k × NR` panel.
///
/// # Safety
/// `x`: `k` floats, `panel`: `k * NR` floats, `y`: `nr` floats, `bias`: null
/// or `nr` floats; `isa` available.
#[allow(clippy::too_many_arguments)]
unsafe fn gemv_panel(
    isa: Isa,
    k: usize,
    x: *const f32,
    panel: *const f32,
    nr: usize,
    y: *mut f32,
    bias: *const f32,
    act: Act,
) {
    // SAFETY: forwarded.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::gemv512(k, x, panel, nr, y, bias, act),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::gemv256(k, x, panel, nr, y, bias, act),
            _ => {
                let mut acc = [0.0f32; NR];
                for p in 0..k {
                    let xv = *x.add(p);
                    let row = std::slice::from_raw_parts(panel.add(p * NR), NR);
                    for (a, &bv) in acc.iter_mut().zip(row) {
                        *a += xv * bv;
                    }
                }
                for (j, &a) in acc.iter().enumerate().take(nr) {
                    let bv = if bias.is_null() { 0.0 } else { *bias.add(j) };
                    *y.add(j) = act.apply(a + bv);
                }
            }
        }
    }
}

/// Portable microkernel (also the fallback off x86).
///
/// # Safety
/// See [`run_tile`].
unsafe fn tile_scalar(rows: usize, t: &Tile) {
    macro_rules! rows {
        ($($r:literal)*) => {
            match rows {
                $($r => tile_scalar_r::<$r>(t),)*
                _ => unreachable!("tile rows"),
            }
        };
    }
    // SAFETY: forwarded.
    unsafe { rows!(1 2 3 4 5 6 7 8) }
}

/// Columns per portable-kernel chunk.
const SW: usize = 16;

#[inline(always)]
unsafe fn tile_scalar_r<const R: usize>(t: &Tile) {
    let mut j0 = 0;
    while j0 < t.nr {
        let w = SW.min(t.nr - j0);
        let mut acc = [[0.0f32; SW]; R];
        for p in 0..t.k {
            let mut bv = [0.0f32; SW];
            // SAFETY: B row p has nr valid floats from column 0.
            unsafe {
                let brow = t.b.add(p * t.ldb + j0);
                for (jj, v) in bv.iter_mut().enumerate().take(w) {
                    *v = *brow.add(jj);
                }
            }
            for (i, acc_i) in acc.iter_mut().enumerate() {
                // SAFETY: A panel has R floats per k-step.
                let av = unsafe { *t.a.add(p * t.a_cs + i * t.a_rs) };
                for (a, &b) in acc_i.iter_mut().zip(&bv) {
                    *a += av * b;
                }
            }
        }
        let post = act_needs_post(t.act);
        for (i, acc_i) in acc.iter().enumerate() {
            // SAFETY: rows < R and columns < nr are valid in C and the biases.
            unsafe {
                let crow = t.c.add(i * t.ldc + j0);
                let br = if t.bias_row.is_null() { 0.0 } else { *t.bias_row.add(i) };
                for (jj, &a) in acc_i.iter().enumerate().take(w) {
                    let mut v = a;
                    if t.load_c {
                        v += *crow.add(jj);
                    }
                    v += br;
                    if !t.bias_col.is_null() {
                        v += *t.bias_col.add(j0 + jj);
                    }
                    *crow.add(jj) = if post { v } else { t.act.apply(v) };
                }
            }
        }
        j0 += SW;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{NR, Tile, act_needs_post};

    /// Prefetch distance of the microkernel, in k-steps.
    const PF_DIST: usize = 12;
    use crate::act::Act;
    use std::arch::x86_64::*;

    /// In-register activation (identity for post-store ones).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn act512(x: __m512, act: Act) -> __m512 {
        let zero = _mm512_setzero_ps();
        let one = _mm512_set1_ps(1.0);
        match act {
            Act::None | Act::Sigmoid => x,
            Act::Relu => _mm512_max_ps(zero, x),
            Act::Clip { min, max } => {
                _mm512_min_ps(_mm512_set1_ps(max), _mm512_max_ps(_mm512_set1_ps(min), x))
            }
            Act::LeakyRelu(a) => {
                let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, zero);
                _mm512_mask_mul_ps(x, neg, x, _mm512_set1_ps(a))
            }
            Act::HardSigmoid { alpha, beta } => {
                let y = _mm512_fmadd_ps(x, _mm512_set1_ps(alpha), _mm512_set1_ps(beta));
                _mm512_min_ps(one, _mm512_max_ps(zero, y))
            }
            Act::HardSwish => {
                let y = _mm512_fmadd_ps(x, _mm512_set1_ps(1.0 / 6.0), _mm512_set1_ps(0.5));
                _mm512_mul_ps(x, _mm512_min_ps(one, _mm512_max_ps(zero, y)))
            }
        }
    }

    /// In-register activation (identity for post-store ones).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn act256(x: __m256, act: Act) -> __m256 {
        let zero = _mm256_setzero_ps();
        let one = _mm256_set1_ps(1.0);
        match act {
            Act::None | Act::Sigmoid => x,
            Act::Relu => _mm256_max_ps(zero, x),
            Act::Clip { min, max } => {
                _mm256_min_ps(_mm256_set1_ps(max), _mm256_max_ps(_mm256_set1_ps(min), x))
            }
            Act::LeakyRelu(a) => {
                let neg = _mm256_cmp_ps::<_CMP_LT_OQ>(x, zero);
                _mm256_blendv_ps(x, _mm256_mul_ps(x, _mm256_set1_ps(a)), neg)
            }
            Act::HardSigmoid { alpha, beta } => {
                let y = _mm256_fmadd_ps(x, _mm256_set1_ps(alpha), _mm256_set1_ps(beta));
                _mm256_min_ps(one, _mm256_max_ps(zero, y))
            }
            Act::HardSwish => {
                let y = _mm256_fmadd_ps(x, _mm256_set1_ps(1.0 / 6.0), _mm256_set1_ps(0.5));
                _mm256_mul_ps(x, _mm256_min_ps(one, _mm256_max_ps(zero, y)))
            }
        }
    }

    #[inline]
    fn mask16(rem: usize) -> __mmask16 {
        if rem >= 16 { 0xFFFF } else { ((1u32 << rem) - 1) as __mmask16 }
    }

    /// AVX-512 tile: up to 8 rows × 48 columns.
    ///
    /// # Safety
    /// See `run_tile`; AVX-512F must be available.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile512(rows: usize, t: &Tile) {
        macro_rules! go {
            ($($r:literal)*) => {
                match (rows, t.nr.div_ceil(16)) {
                    $(($r, 1) => kern512::<$r, 1>(t),
                      ($r, 2) => kern512::<$r, 2>(t),
                      ($r, _) => kern512::<$r, 3>(t),)*
                    _ => unreachable!("tile rows"),
                }
            };
        }
        debug_assert!(t.nr >= 1 && t.nr <= NR);
        if t.nr <= COL_MAX && rows >= 2 && t.a_rs == 1 {
            // SAFETY: forwarded.
            return unsafe { kcol512(rows, t) };
        }
        // SAFETY: forwarded.
        unsafe { go!(1 2 3 4 5 6 7 8) }
    }

    /// Narrowest tiles (≤ `COL_MAX` columns, the tail of `n`) go to the
    /// column kernels, which vectorise over the panel's rows instead.
    const COL_MAX: usize = 6;

    /// AVX-512 column kernel: `rows ≤ 8` in the low lanes of one zmm,
    /// `nr ≤ COL_MAX` broadcast `B` values per k-step, four k-steps in flight.
    ///
    /// # Safety
    /// See `run_tile`; AVX-512F must be available.
    #[target_feature(enable = "avx512f")]
    unsafe fn kcol512(rows: usize, t: &Tile) {
        macro_rules! go {
            ($($c:literal)*) => {
                match t.nr {
                    $($c => kcol512_t::<$c>(rows, t),)*
                    _ => unreachable!("column tile width"),
                }
            };
        }
        // SAFETY: forwarded.
        unsafe { go!(1 2 3 4 5 6) }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::needless_range_loop)]
    unsafe fn kcol512_t<const T: usize>(rows: usize, t: &Tile) {
        const U: usize = 4;
        // SAFETY: the caller guarantees the tile's extents; only the `rows`
        // low lanes of A and C are accessed.
        unsafe {
            let am = mask16(rows);
            let mut acc = [[_mm512_setzero_ps(); T]; U];
            let (mut a, mut b) = (t.a, t.b);
            let mut p = 0;
            while p + U <= t.k {
                for (u, acc_u) in acc.iter_mut().enumerate() {
                    let av = _mm512_maskz_loadu_ps(am, a.add(u * t.a_cs));
                    let bp = b.add(u * t.ldb);
                    for (j, acc_uj) in acc_u.iter_mut().enumerate() {
                        *acc_uj = _mm512_fmadd_ps(av, _mm512_set1_ps(*bp.add(j)), *acc_uj);
                    }
                }
                a = a.add(U * t.a_cs);
                b = b.add(U * t.ldb);
                p += U;
            }
            while p < t.k {
                let av = _mm512_maskz_loadu_ps(am, a);
                for (j, acc_j) in acc[0].iter_mut().enumerate() {
                    *acc_j = _mm512_fmadd_ps(av, _mm512_set1_ps(*b.add(j)), *acc_j);
                }
                a = a.add(t.a_cs);
                b = b.add(t.ldb);
                p += 1;
            }
            let br = if t.bias_row.is_null() {
                _mm512_setzero_ps()
            } else {
                _mm512_maskz_loadu_ps(am, t.bias_row)
            };
            let mut buf = [0.0f32; 16];
            for j in 0..T {
                let mut x =
                    _mm512_add_ps(_mm512_add_ps(acc[0][j], acc[1][j]), _mm512_add_ps(acc[2][j], acc[3][j]));
                if t.load_c {
                    for (i, v) in buf.iter_mut().enumerate().take(rows) {
                        *v = *t.c.add(i * t.ldc + j);
                    }
                    x = _mm512_add_ps(x, _mm512_loadu_ps(buf.as_ptr()));
                }
                x = _mm512_add_ps(x, br);
                if !t.bias_col.is_null() {
                    x = _mm512_add_ps(x, _mm512_set1_ps(*t.bias_col.add(j)));
                }
                _mm512_storeu_ps(buf.as_mut_ptr(), act512(x, t.act));
                for (i, &v) in buf.iter().enumerate().take(rows) {
                    *t.c.add(i * t.ldc + j) = v;
                }
            }
        }
    }

    /// AVX2 column kernel (see `kcol512`): rows in one ymm, two k-steps in
    /// flight.
    ///
    /// # Safety
    /// See `run_tile`; AVX2 and FMA must be available.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn kcol256(rows: usize, t: &Tile) {
        macro_rules! go {
            ($($c:literal)*) => {
                match t.nr {
                    $($c => kcol256_t::<$c>(rows, t),)*
                    _ => unreachable!("column tile width"),
                }
            };
        }
        // SAFETY: forwarded.
        unsafe { go!(1 2 3 4 5 6) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::needless_range_loop)]
    unsafe fn kcol256_t<const T: usize>(rows: usize, t: &Tile) {
        const U: usize = 2;
        // SAFETY: the caller guarantees the tile's extents; only the `rows`
        // low lanes of A and C are accessed.
        unsafe {
            let am = lane_mask(rows);
            let mut acc = [[_mm256_setzero_ps(); T]; U];
            let (mut a, mut b) = (t.a, t.b);
            let mut p = 0;
            while p + U <= t.k {
                for (u, acc_u) in acc.iter_mut().enumerate() {
                    let av = _mm256_maskload_ps(a.add(u * t.a_cs), am);
                    let bp = b.add(u * t.ldb);
                    for (j, acc_uj) in acc_u.iter_mut().enumerate() {
                        *acc_uj = _mm256_fmadd_ps(av, _mm256_broadcast_ss(&*bp.add(j)), *acc_uj);
                    }
                }
                a = a.add(U * t.a_cs);
                b = b.add(U * t.ldb);
                p += U;
            }
            while p < t.k {
                let av = _mm256_maskload_ps(a, am);
                for (j, acc_j) in acc[0].iter_mut().enumerate() {
                    *acc_j = _mm256_fmadd_ps(av, _mm256_broadcast_ss(&*b.add(j)), *acc_j);
                }
                a = a.add(t.a_cs);
                b = b.add(t.ldb);
                p += 1;
            }
            let br =
                if t.bias_row.is_null() { _mm256_setzero_ps() } else { _mm256_maskload_ps(t.bias_row, am) };
            let mut buf = [0.0f32; 8];
            for j in 0..T {
                let mut x = _mm256_add_ps(acc[0][j], acc[1][j]);
                if t.load_c {
                    for (i, v) in buf.iter_mut().enumerate().take(rows) {
                        *v = *t.c.add(i * t.ldc + j);
                    }
                    x = _mm256_add_ps(x, _mm256_loadu_ps(buf.as_ptr()));
                }
                x = _mm256_add_ps(x, br);
                if !t.bias_col.is_null() {
                    x = _mm256_add_ps(x, _mm256_set1_ps(*t.bias_col.add(j)));
                }
                _mm256_storeu_ps(buf.as_mut_ptr(), act256(x, t.act));
                for (i, &v) in buf.iter().enumerate().take(rows) {
                    *t.c.add(i * t.ldc + j) = v;
                }
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn kern512<const R: usize, const NV: usize>(t: &Tile) {
        // SAFETY: the caller guarantees the tile's extents; masked lanes
        // are never accessed.
        unsafe {
            let tail = mask16(t.nr - 16 * (NV - 1));
            let mut acc = [[_mm512_setzero_ps(); NV]; R];
            let (mut a, mut b) = (t.a, t.b);
            for _ in 0..t.k {
                // Prefetch B a few k-steps ahead (L2 → L1).
                let q = b.wrapping_add(PF_DIST * t.ldb) as *const i8;
                for v in 0..NV {
                    _mm_prefetch::<_MM_HINT_T0>(q.wrapping_add(64 * v));
                }
                let mut bv = [_mm512_setzero_ps(); NV];
                for (v, bvv) in bv.iter_mut().enumerate() {
                    *bvv = if v + 1 == NV {
                        _mm512_maskz_loadu_ps(tail, b.add(16 * v))
                    } else {
                        _mm512_loadu_ps(b.add(16 * v))
                    };
                }
                for (i, acc_i) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*a.add(i * t.a_rs));
                    for (acc_iv, bvv) in acc_i.iter_mut().zip(&bv) {
                        *acc_iv = _mm512_fmadd_ps(av, *bvv, *acc_iv);
                    }
                }
                a = a.add(t.a_cs);
                b = b.add(t.ldb);
            }
            let has_bc = !t.bias_col.is_null();
            let mut bc = [_mm512_setzero_ps(); NV];
            if has_bc {
                for (v, bcv) in bc.iter_mut().enumerate() {
                    let m = if v + 1 == NV { tail } else { 0xFFFF };
                    *bcv = _mm512_maskz_loadu_ps(m, t.bias_col.add(16 * v));
                }
            }
            for (i, acc_i) in acc.iter().enumerate() {
                let crow = t.c.add(i * t.ldc);
                let has_br = !t.bias_row.is_null();
                let br = if has_br { _mm512_set1_ps(*t.bias_row.add(i)) } else { _mm512_setzero_ps() };
                for (v, &x0) in acc_i.iter().enumerate() {
                    let m = if v + 1 == NV { tail } else { 0xFFFF };
                    let mut x = x0;
                    if t.load_c {
                        x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, crow.add(16 * v)));
                    }
                    if has_br {
                        x = _mm512_add_ps(x, br);
                    }
                    if has_bc {
                        x = _mm512_add_ps(x, bc[v]);
                    }
                    _mm512_mask_storeu_ps(crow.add(16 * v), m, act512(x, t.act));
                }
            }
        }
    }

    /// AVX2 tile: runs the up-to-8 × 48 tile as 4-row × 24-column pieces.
    ///
    /// # Safety
    /// See `run_tile`; AVX2 and FMA must be available.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile256(rows: usize, t: &Tile) {
        if t.nr <= COL_MAX && rows >= 2 && t.a_rs == 1 {
            // SAFETY: forwarded.
            return unsafe { kcol256(rows, t) };
        }
        let mut j0 = 0;
        while j0 < t.nr {
            let nr = 24.min(t.nr - j0);
            let mut i0 = 0;
            while i0 < rows {
                let r = 4.min(rows - i0);
                let s = t.sub(i0, j0, nr);
                macro_rules! go {
                    ($($r:literal)*) => {
                        match (r, nr.div_ceil(8), nr % 8 == 0) {
                            $(($r, 1, true) => kern256::<$r, 1, false>(&s),
                              ($r, 2, true) => kern256::<$r, 2, false>(&s),
                              ($r, _, true) => kern256::<$r, 3, false>(&s),
                              ($r, 1, false) => kern256::<$r, 1, true>(&s),
                              ($r, 2, false) => kern256::<$r, 2, true>(&s),
                              ($r, _, false) => kern256::<$r, 3, true>(&s),)*
                            _ => unreachable!("tile rows"),
                        }
                    };
                }
                // SAFETY: a sub-tile of the caller's tile.
                unsafe { go!(1 2 3 4) }
                i0 += 4;
            }
            j0 += 24;
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn lane_mask(rem: usize) -> __m256i {
        _mm256_cmpgt_epi32(_mm256_set1_epi32(rem as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn kern256<const R: usize, const NV: usize, const MASK: bool>(t: &Tile) {
        // SAFETY: the caller guarantees the tile's extents; masked lanes
        // are never accessed.
        unsafe {
            let tail = lane_mask(t.nr - 8 * (NV - 1));
            let load = |p: *const f32, v: usize| {
                if MASK && v + 1 == NV { _mm256_maskload_ps(p, tail) } else { _mm256_loadu_ps(p) }
            };
            let mut acc = [[_mm256_setzero_ps(); NV]; R];
            let (mut a, mut b) = (t.a, t.b);
            for _ in 0..t.k {
                let mut bv = [_mm256_setzero_ps(); NV];
                for (v, bvv) in bv.iter_mut().enumerate() {
                    *bvv = load(b.add(8 * v), v);
                }
                for (i, acc_i) in acc.iter_mut().enumerate() {
                    let av = _mm256_broadcast_ss(&*a.add(i * t.a_rs));
                    for (acc_iv, bvv) in acc_i.iter_mut().zip(&bv) {
                        *acc_iv = _mm256_fmadd_ps(av, *bvv, *acc_iv);
                    }
                }
                a = a.add(t.a_cs);
                b = b.add(t.ldb);
            }
            let has_bc = !t.bias_col.is_null();
            let mut bc = [_mm256_setzero_ps(); NV];
            if has_bc {
                for (v, bcv) in bc.iter_mut().enumerate() {
                    *bcv = load(t.bias_col.add(8 * v), v);
                }
            }
            for (i, acc_i) in acc.iter().enumerate() {
                let crow = t.c.add(i * t.ldc);
                let has_br = !t.bias_row.is_null();
                let br = if has_br { _mm256_set1_ps(*t.bias_row.add(i)) } else { _mm256_setzero_ps() };
                for (v, &x0) in acc_i.iter().enumerate() {
                    let mut x = x0;
                    if t.load_c {
                        x = _mm256_add_ps(x, load(crow.add(8 * v), v));
                    }
                    if has_br {
                        x = _mm256_add_ps(x, br);
                    }
                    if has_bc {
                        x = _mm256_add_ps(x, bc[v]);
                    }
                    let y = act256(x, t.act);
                    if MASK && v + 1 == NV {
                        _mm256_maskstore_ps(crow.add(8 * v), tail, y);
                    } else {
                        _mm256_storeu_ps(crow.add(8 * v), y);
                    }
                }
            }
        }
    }

    /// AVX-512 form of `pack_b` (`panels` panels, the last `tail` columns
    /// wide with row stride `tw`).
    ///
    /// # Safety
    /// AVX-512F; `src`: `k` rows of `(panels - 1) * 48 + tail` floats at
    /// stride `ldb`; `dst`: `k * panels * 48` floats.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn pack_b512(
        src: *const f32,
        ldb: usize,
        k: usize,
        panels: usize,
        tail: usize,
        tw: usize,
        dst: *mut f32,
    ) {
        // SAFETY: per the contract; masked lanes are not accessed.
        unsafe {
            let pstride = k * NR;
            let last = dst.add((panels - 1) * pstride);
            for p in 0..k {
                let s = src.add(p * ldb);
                let d = dst.add(p * NR);
                for j in 0..panels - 1 {
                    let (s, d) = (s.add(j * NR), d.add(j * pstride));
                    let (a, b, c) =
                        (_mm512_loadu_ps(s), _mm512_loadu_ps(s.add(16)), _mm512_loadu_ps(s.add(32)));
                    _mm512_storeu_ps(d, a);
                    _mm512_storeu_ps(d.add(16), b);
                    _mm512_storeu_ps(d.add(32), c);
                }
                let (s, d) = (s.add((panels - 1) * NR), last.add(p * tw));
                for v in 0..tw.div_ceil(16) {
                    let x = _mm512_maskz_loadu_ps(mask16(tail.saturating_sub(16 * v)), s.add(16 * v));
                    _mm512_mask_storeu_ps(d.add(16 * v), mask16(tw - 16 * v), x);
                }
            }
        }
    }

    /// AVX-512 GEMV over one zero-padded `k × 48` panel.
    ///
    /// # Safety
    /// See `gemv_panel`.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::needless_range_loop)]
    pub(super) unsafe fn gemv512(
        k: usize,
        x: *const f32,
        panel: *const f32,
        nr: usize,
        y: *mut f32,
        bias: *const f32,
        act: Act,
    ) {
        // SAFETY: per the contract (the panel is zero-padded to 48 columns).
        unsafe {
            const U: usize = 4;
            let mut acc = [[_mm512_setzero_ps(); 3]; U];
            let mut p = 0;
            while p + U <= k {
                for (u, acc_u) in acc.iter_mut().enumerate() {
                    let xv = _mm512_set1_ps(*x.add(p + u));
                    let row = panel.add((p + u) * NR);
                    for (v, a) in acc_u.iter_mut().enumerate() {
                        *a = _mm512_fmadd_ps(xv, _mm512_loadu_ps(row.add(16 * v)), *a);
                    }
                }
                p += U;
            }
            while p < k {
                let xv = _mm512_set1_ps(*x.add(p));
                let row = panel.add(p * NR);
                for (v, a) in acc[0].iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(xv, _mm512_loadu_ps(row.add(16 * v)), *a);
                }
                p += 1;
            }
            for v in 0..3 {
                if 16 * v >= nr {
                    break;
                }
                let m = mask16(nr - 16 * v);
                let mut s =
                    _mm512_add_ps(_mm512_add_ps(acc[0][v], acc[1][v]), _mm512_add_ps(acc[2][v], acc[3][v]));
                if !bias.is_null() {
                    s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(m, bias.add(16 * v)));
                }
                _mm512_mask_storeu_ps(y.add(16 * v), m, act512(s, act));
            }
            if act_needs_post(act) {
                crate::act::bias_act(std::slice::from_raw_parts_mut(y, nr), 0.0, act);
            }
        }
    }

    /// AVX2 GEMV over one zero-padded `k × 48` panel.
    ///
    /// # Safety
    /// See `gemv_panel`.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::needless_range_loop)]
    pub(super) unsafe fn gemv256(
        k: usize,
        x: *const f32,
        panel: *const f32,
        nr: usize,
        y: *mut f32,
        bias: *const f32,
        act: Act,
    ) {
        // SAFETY: per the contract (the panel is zero-padded to 48 columns).
        unsafe {
            const U: usize = 2;
            let mut acc = [[_mm256_setzero_ps(); 6]; U];
            let mut p = 0;
            while p + U <= k {
                for (u, acc_u) in acc.iter_mut().enumerate() {
                    let xv = _mm256_broadcast_ss(&*x.add(p + u));
                    let row = panel.add((p + u) * NR);
                    for (v, a) in acc_u.iter_mut().enumerate() {
                        *a = _mm256_fmadd_ps(xv, _mm256_loadu_ps(row.add(8 * v)), *a);
                    }
                }
                p += U;
            }
            while p < k {
                let xv = _mm256_broadcast_ss(&*x.add(p));
                let row = panel.add(p * NR);
                for (v, a) in acc[0].iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(xv, _mm256_loadu_ps(row.add(8 * v)), *a);
                }
                p += 1;
            }
            let mut out = [0.0f32; NR];
            for v in 0..6 {
                let s = _mm256_add_ps(acc[0][v], acc[1][v]);
                _mm256_storeu_ps(out.as_mut_ptr().add(8 * v), s);
            }
            for (j, &o) in out.iter().enumerate().take(nr) {
                let bv = if bias.is_null() { 0.0 } else { *bias.add(j) };
                *y.add(j) = act.apply(o + bv);
            }
        }
    }
}
