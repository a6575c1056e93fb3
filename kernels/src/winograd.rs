//! Winograd convolution for 3×3, stride 1, dilation 1, ungrouped 2-D convs
//! (NCHW, f32): F(2×2, 3×3) and F(4×4, 3×3).
//!
//! Pipeline per block of output tiles: input transform `V = Bᵀ d B` of each
//! (tile, input channel) into `[elem][c_in][tiles]`, one small GEMM per tile
//! element `M[e] = U[e] · V[e]` (`U = G g Gᵀ` pre-transformed once in
//! [`WinogradConv::new`]), then the output transform `Y = Aᵀ M A` with bias,
//! residual and activation fused into the store.  Blocks of tiles are sized
//! so that `V` stays in L2; blocks run in parallel on the current rayon pool,
//! or, when there are too few tiles, the input transform is split over input
//! channels and the GEMM + output transform over output channels.
//!
//! On x86-64 CPUs with AVX-512 the transforms run 16 tiles per vector (tiles
//! of one tile row are lanes) and the GEMMs use an 8×48 register-blocked
//! kernel; elsewhere a portable scalar-transform path with the `gemm` crate
//! is used (same results up to rounding).
//!
//! Accuracy (measured by `kernels/tests/winograd.rs` against
//! [`crate::conv_ref`], inputs and weights uniform in [-1, 1], error relative
//! to the largest output magnitude of the case): F2 worst 1.5e-7
//! (c_in up to 64); F4 worst 4.5e-7.  The tests allow 1e-5 (F2) and 4e-6 (F4).

use crate::act::Act;
use crate::conv::ConvGeom;
use crate::gemm::gemm_strided;
use crate::{SendPtr, threads_for};
use rayon::prelude::*;
use std::cell::Cell;
use std::thread::LocalKey;

/// Output-channel rows per packed weight panel (GEMM register block height).
const MR: usize = 8;
/// Panels per output-channel chunk (rows of the `M` scratch per element).
const CO_PANELS: usize = 4;
/// Rows of one `M` chunk.
const CH: usize = CO_PANELS * MR;
/// Target size (floats) of one block's transformed input `V`.
const V_BUDGET: usize = 196_608;

/// Winograd tile variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WinoTile {
    /// F(2×2, 3×3): 4×4 input tiles, 16 GEMMs; 2.25× fewer multiplies than
    /// direct convolution, nearly exact.
    F2,
    /// F(4×4, 3×3): 6×6 input tiles, 36 GEMMs; 4× fewer multiplies, a few
    /// times larger rounding error than F2.
    F4,
}

impl WinoTile {
    /// Output tile edge.
    fn m(self) -> usize {
        match self {
            WinoTile::F2 => 2,
            WinoTile::F4 => 4,
        }
    }

    /// Input tile edge.
    fn alpha(self) -> usize {
        self.m() + 2
    }

    /// Tile elements (number of GEMMs).
    fn elems(self) -> usize {
        self.alpha() * self.alpha()
    }
}

/// A 3×3 convolution layer with Winograd-transformed weights, built once per
/// layer and run for any batch and input size (see [`WinogradConv::applies`]).
#[derive(Clone, Debug)]
pub struct WinogradConv {
    tile: WinoTile,
    c_in: usize,
    c_out: usize,
    /// AVX-512 layout `[c_out/MR][elem][c_in][MR]` (rows zero-padded), else
    /// plain `[elem][c_out][c_in]`.
    avx512: bool,
    u: Vec<f32>,
}

const G2: [[f64; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];
const G4: [[f64; 3]; 6] = [
    [0.25, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

impl WinogradConv {
    /// Transforms `weight` (ONNX layout `[c_out, c_in, 3, 3]`) for `tile`.
    pub fn new(tile: WinoTile, c_in: usize, c_out: usize, weight: &[f32]) -> WinogradConv {
        Self::build(tile, c_in, c_out, weight, avx512_available())
    }

    /// Like [`WinogradConv::new`] but always uses the portable (non-SIMD)
    /// path; for testing that path on machines with AVX-512.
    #[doc(hidden)]
    pub fn new_portable(tile: WinoTile, c_in: usize, c_out: usize, weight: &[f32]) -> WinogradConv {
        Self::build(tile, c_in, c_out, weight, false)
    }

    fn build(tile: WinoTile, c_in: usize, c_out: usize, weight: &[f32], avx512: bool) -> WinogradConv {
        assert!(weight.len() >= c_out * c_in * 9, "WinogradConv: weight too short");
        let a = tile.alpha();
        let e_n = tile.elems();
        let gm: &[[f64; 3]] = match tile {
            WinoTile::F2 => &G2,
            WinoTile::F4 => &G4,
        };
        let cpad = c_out.next_multiple_of(MR);
        let mut u = vec![0.0f32; e_n * if avx512 { cpad } else { c_out } * c_in];
        for co in 0..c_out {
            for ci in 0..c_in {
                let g = &weight[(co * c_in + ci) * 9..][..9];
                // t = G g (a×3), U = t Gᵀ (a×a), in f64.
                let mut t = [[0.0f64; 3]; 6];
                for i in 0..a {
                    for k in 0..3 {
                        t[i][k] = (0..3).map(|r| gm[i][r] * g[r * 3 + k] as f64).sum();
                    }
                }
                for (i, ti) in t.iter().enumerate().take(a) {
                    for (j, gj) in gm.iter().enumerate().take(a) {
                        let val = (0..3).map(|k| ti[k] * gj[k]).sum::<f64>() as f32;
                        let e = i * a + j;
                        let idx = if avx512 {
                            (((co / MR) * e_n + e) * c_in + ci) * MR + co % MR
                        } else {
                            (e * c_out + co) * c_in + ci
                        };
                        u[idx] = val;
                    }
                }
            }
        }
        WinogradConv { tile, c_in, c_out, avx512, u }
    }

    /// The tile variant.
    pub fn tile(&self) -> WinoTile {
        self.tile
    }

    /// Input channels the weights were built for.
    pub fn c_in(&self) -> usize {
        self.c_in
    }

    /// Output channels the weights were built for.
    pub fn c_out(&self) -> usize {
        self.c_out
    }

    /// True when `geom` is a 2-D 3×3 convolution with stride 1, dilation 1
    /// and one group (any padding, batch and size).
    pub fn applies(geom: &ConvGeom) -> bool {
        geom.in_spatial.len() == 2
            && geom.kernel == [3, 3]
            && geom.strides == [1, 1]
            && geom.dilations == [1, 1]
            && geom.groups == 1
            && geom.pads_begin.len() == 2
            && geom.pads_end.len() == 2
    }

    /// `out = act(conv(x) + bias (+ out on entry when accumulate))`.
    ///
    /// `x`: `[batch, c_in, h, w]`, `bias`: `[c_out]`, `out`:
    /// `[batch, c_out, oh, ow]`; with `accumulate` `out` holds a residual of
    /// that shape on entry (added before the activation).  `geom` must
    /// satisfy [`WinogradConv::applies`] and match the channel counts.
    pub fn run(
        &self,
        geom: &ConvGeom,
        x: &[f32],
        bias: Option<&[f32]>,
        accumulate: bool,
        act: Act,
        out: &mut [f32],
    ) {
        assert!(Self::applies(geom), "WinogradConv: geometry not supported: {geom:?}");
        assert!(
            geom.c_in == self.c_in && geom.c_out == self.c_out,
            "WinogradConv: channel counts do not match the weights"
        );
        assert!(x.len() >= geom.in_len(), "WinogradConv: input too short");
        assert!(out.len() >= geom.out_len(), "WinogradConv: output too short");
        if let Some(b) = bias {
            assert!(b.len() >= self.c_out, "WinogradConv: bias too short");
        }
        if geom.out_len() == 0 {
            return;
        }
        let ep = Epi { bias, accumulate, act };
        match self.tile {
            WinoTile::F2 => self.run_k::<K2>(geom, x, &ep, out),
            WinoTile::F4 => self.run_k::<K4>(geom, x, &ep, out),
        }
    }

    fn run_k<K: Kind>(&self, geom: &ConvGeom, x: &[f32], ep: &Epi, out: &mut [f32]) {
        let p = Plan::new(self.tile, geom, self.avx512);
        let outp = SendPtr(out.as_mut_ptr());
        let vlen = p.e_n * p.c_in * p.tld;
        let mlen = p.e_n * CH * p.tld;
        let panels = p.c_out.div_ceil(MR);
        if !p.split {
            let task = |b: usize| {
                let (g0, g1) = p.block(b);
                with_buf(&VBUF, vlen, |vb| {
                    with_buf(&MBUF, mlen, |mb| {
                        self.input::<K>(&p, x, g0, g1, 0, p.c_in, vb);
                        self.co_range::<K>(&p, g0, g1, vb, 0, panels, mb, ep, outp);
                    })
                })
            };
            if p.threads > 1 {
                (0..p.nblocks).into_par_iter().for_each(task);
            } else {
                (0..p.nblocks).for_each(task);
            }
            return;
        }
        // Few blocks: share every block's V between the threads.
        let per = (2 * p.threads).div_ceil(p.nblocks);
        let ci_tasks = per.clamp(1, p.c_in.max(1));
        let ci_chunk = p.c_in.div_ceil(ci_tasks).max(1);
        let co_tasks = per.clamp(1, panels);
        let co_chunk = panels.div_ceil(co_tasks);
        with_buf(&VBUF, p.nblocks * vlen, |vall| {
            let vall = SendPtr(vall);
            (0..p.nblocks * ci_tasks).into_par_iter().for_each(|t| {
                let (b, c) = (t / ci_tasks, t % ci_tasks);
                let (g0, g1) = p.block(b);
                let (c0, c1) = (c * ci_chunk, ((c + 1) * ci_chunk).min(p.c_in));
                if c0 < c1 {
                    // SAFETY: block b's V region, rows c0..c1 are written by this task only.
                    self.input::<K>(&p, x, g0, g1, c0, c1, unsafe { vall.get().add(b * vlen) });
                }
            });
            (0..p.nblocks * co_tasks).into_par_iter().for_each(|t| {
                let (b, c) = (t / co_tasks, t % co_tasks);
                let (g0, g1) = p.block(b);
                let (p0, p1) = (c * co_chunk, ((c + 1) * co_chunk).min(panels));
                if p0 < p1 {
                    with_buf(&MBUF, mlen, |mb| {
                        // SAFETY: block b's V region, fully written above.
                        let vb = unsafe { vall.get().add(b * vlen) };
                        self.co_range::<K>(&p, g0, g1, vb, p0, p1, mb, ep, outp);
                    });
                }
            });
        });
    }

    /// Input transform of tiles `g0..g1`, channels `c0..c1` into `v`
    /// (`[elem][c_in][tld]`).
    #[allow(clippy::too_many_arguments)]
    fn input<K: Kind>(&self, p: &Plan, x: &[f32], g0: usize, g1: usize, c0: usize, c1: usize, v: *mut f32) {
        #[cfg(target_arch = "x86_64")]
        if self.avx512 {
            // SAFETY: avx512 is only set when the CPU supports AVX-512F; `v`
            // holds a block's V and x was checked to hold the input.
            unsafe { avx::input::<K>(p, x.as_ptr(), g0, g1, c0, c1, v) };
            return;
        }
        input_portable::<K>(p, x, g0, g1, c0, c1, v);
    }

    /// GEMMs and output transform of tiles `g0..g1` for output-channel panels
    /// `p0..p1`.
    #[allow(clippy::too_many_arguments)]
    fn co_range<K: Kind>(
        &self,
        p: &Plan,
        g0: usize,
        g1: usize,
        v: *const f32,
        p0: usize,
        p1: usize,
        m: *mut f32,
        ep: &Epi,
        out: SendPtr<f32>,
    ) {
        let tb = g1 - g0;
        let mut pc = p0;
        while pc < p1 {
            let pe = (pc + CO_PANELS).min(p1);
            let (co0, co1) = (pc * MR, (pe * MR).min(p.c_out));
            #[cfg(target_arch = "x86_64")]
            if self.avx512 {
                // SAFETY: CPU has AVX-512F; buffers sized by the plan.
                unsafe {
                    avx::gemm_chunk(p, &self.u, v, pc, pe, tb.next_multiple_of(16), m);
                    avx::output::<K>(p, m, g0, g1, pc * MR, co0, co1, ep, out.get());
                }
                pc = pe;
                continue;
            }
            for e in 0..p.e_n {
                // SAFETY: U[e] rows co0..co1, V[e] (c_in × tb, ld tld) and the
                // M chunk (CH × tb, ld tld) are in bounds.
                unsafe {
                    gemm_strided(
                        co1 - co0,
                        tb,
                        p.c_in,
                        1.0,
                        self.u.as_ptr().add((e * p.c_out + co0) * p.c_in),
                        p.c_in,
                        1,
                        v.add(e * p.c_in * p.tld),
                        p.tld,
                        1,
                        0.0,
                        m.add(e * CH * p.tld),
                        p.tld,
                        1,
                        1,
                    )
                }
            }
            output_portable::<K>(p, m, g0, g1, co0, co0, co1, ep, out.get());
            pc = pe;
        }
    }
}

fn avx512_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::has_avx512()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Fused epilogue.
struct Epi<'a> {
    bias: Option<&'a [f32]>,
    accumulate: bool,
    act: Act,
}

/// Problem geometry and blocking.
struct Plan {
    /// Output tile edge (tile stride) and tile elements.
    s: usize,
    e_n: usize,
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    pt: usize,
    pl: usize,
    ntx: usize,
    /// Tiles per image, all tiles.
    tpi: usize,
    nt: usize,
    /// Tiles per block and V/M row length (multiple of 16).
    t: usize,
    tld: usize,
    nblocks: usize,
    threads: usize,
    /// Split each block's work over channels instead of running blocks in
    /// parallel.
    split: bool,
}

impl Plan {
    fn new(tile: WinoTile, g: &ConvGeom, avx512: bool) -> Plan {
        let [_, oh, ow] = g.geom3().outs;
        let s = tile.m();
        let e_n = tile.elems();
        let ntx = ow.div_ceil(s);
        let tpi = oh.div_ceil(s) * ntx;
        let nt = g.batch * tpi;
        let threads = threads_for(g.macs());
        let gmax = (V_BUDGET / (e_n * g.c_in.max(1)) / 16).clamp(1, 8);
        let groups = nt.div_ceil(16);
        let (gpb, split) = if threads <= 1 {
            (gmax, false)
        } else {
            // Largest block (in groups of 16 tiles) with the best greedy
            // makespan; split when even that leaves threads idle.
            let mut best = (usize::MAX, gmax);
            for gpb in (1..=gmax).rev() {
                let ms = makespan(groups, gpb, threads);
                if ms < best.0 {
                    best = (ms, gpb);
                }
            }
            let ideal = groups.div_ceil(threads);
            let nb = groups.div_ceil(best.1);
            if nb < threads || best.0 * 4 > ideal * 5 { (gmax, true) } else { (best.1, false) }
        };
        let t = (gpb * 16).min(nt.max(1));
        let tld = if avx512 { t.next_multiple_of(16) } else { t };
        Plan {
            s,
            e_n,
            c_in: g.c_in,
            c_out: g.c_out,
            h: g.in_spatial[0],
            w: g.in_spatial[1],
            oh,
            ow,
            pt: g.pads_begin[0],
            pl: g.pads_begin[1],
            ntx,
            tpi,
            nt,
            t,
            tld,
            nblocks: nt.div_ceil(t),
            threads,
            split,
        }
    }

    /// Tile range of block `b`.
    fn block(&self, b: usize) -> (usize, usize) {
        (b * self.t, ((b + 1) * self.t).min(self.nt))
    }

    /// (image, tile row, tile column) of global tile `g`.
    fn tile_pos(&self, g: usize) -> (usize, usize, usize) {
        let r = g % self.tpi;
        (g / self.tpi, r / self.ntx, r % self.ntx)
    }
}

/// Greedy (largest first) makespan of `groups` units cut into blocks of
/// `gpb` (last one smaller) over `threads` workers.
///
/// In closed form (no allocation on the run path): the full blocks go round
/// robin; the short last block lands on a least-loaded worker.
fn makespan(groups: usize, gpb: usize, threads: usize) -> usize {
    let (full, rem) = (groups / gpb, groups % gpb);
    let (q, r) = (full / threads, full % threads);
    if r > 0 { (q + 1) * gpb } else { q * gpb + rem }
}

/// Up to 16 consecutive tiles of one tile row: the lanes of one vector.
struct Seg {
    img: usize,
    ty: usize,
    tx: usize,
    n: usize,
    /// Column of the first tile in the block's V/M rows.
    toff: usize,
}

/// Splits tiles `g..g1` into row segments of at most 16 tiles.
struct Segs<'a> {
    p: &'a Plan,
    g0: usize,
    g: usize,
    g1: usize,
}

impl Iterator for Segs<'_> {
    type Item = Seg;

    #[inline]
    fn next(&mut self) -> Option<Seg> {
        if self.g >= self.g1 {
            return None;
        }
        let (img, ty, tx) = self.p.tile_pos(self.g);
        let n = 16.min(self.p.ntx - tx).min(self.g1 - self.g);
        let seg = Seg { img, ty, tx, n, toff: self.g - self.g0 };
        self.g += n;
        Some(seg)
    }
}

fn segs(p: &Plan, g0: usize, g1: usize) -> Segs<'_> {
    Segs { p, g0, g: g0, g1 }
}

std::thread_local! {
    static VBUF: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    static MBUF: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` with a 64-byte aligned pointer to at least `len` floats from the
/// thread-local buffer `key` (contents unspecified; re-entrant).
fn with_buf<R>(key: &'static LocalKey<Cell<Vec<f32>>>, len: usize, f: impl FnOnce(*mut f32) -> R) -> R {
    let mut buf = key.with(|s| s.take());
    if buf.len() < len + 16 {
        buf.resize(len + 16, 0.0);
    }
    let off = buf.as_ptr().align_offset(64).min(16);
    // SAFETY: off ≤ 16 and the buffer holds len + 16 floats.
    let r = f(unsafe { buf.as_mut_ptr().add(off) });
    key.with(|s| {
        let old = s.take();
        s.set(if old.len() > buf.len() { old } else { buf });
    });
    r
}

/// Minimal vector arithmetic the transforms need (f32 lanes or AVX-512).
trait Lane: Copy {
    fn zero() -> Self;
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    /// `self * k + c`.
    fn fma(self, k: f32, c: Self) -> Self;
}

impl Lane for f32 {
    #[inline(always)]
    fn zero() -> f32 {
        0.0
    }
    #[inline(always)]
    fn add(self, o: f32) -> f32 {
        self + o
    }
    #[inline(always)]
    fn sub(self, o: f32) -> f32 {
        self - o
    }
    #[inline(always)]
    fn fma(self, k: f32, c: f32) -> f32 {
        self * k + c
    }
}

/// One Winograd variant's 1-D transforms (arrays padded to 6 entries).
trait Kind {
    /// Input tile edge.
    const A: usize;
    /// Output tile edge.
    const M: usize;
    /// `Bᵀ d` of one column `d[..A]`.
    fn bt<L: Lane>(d: [L; 6]) -> [L; 6];
    /// `Aᵀ m` of one column `m[..A]`.
    fn at<L: Lane>(m: [L; 6]) -> [L; 4];
}

struct K2;
struct K4;

impl Kind for K2 {
    const A: usize = 4;
    const M: usize = 2;
    #[inline(always)]
    fn bt<L: Lane>(d: [L; 6]) -> [L; 6] {
        let z = L::zero();
        [d[0].sub(d[2]), d[1].add(d[2]), d[2].sub(d[1]), d[1].sub(d[3]), z, z]
    }
    #[inline(always)]
    fn at<L: Lane>(m: [L; 6]) -> [L; 4] {
        let z = L::zero();
        [m[0].add(m[1]).add(m[2]), m[1].sub(m[2]).sub(m[3]), z, z]
    }
}

impl Kind for K4 {
    const A: usize = 6;
    const M: usize = 4;
    #[inline(always)]
    fn bt<L: Lane>(d: [L; 6]) -> [L; 6] {
        let t0 = d[0].fma(4.0, d[2].fma(-5.0, d[4]));
        let b = d[1].add(d[2]);
        let t1 = b.fma(-4.0, d[3].add(d[4]));
        let e = d[1].sub(d[2]);
        let t2 = e.fma(4.0, d[4].sub(d[3]));
        let f = d[4].sub(d[2]);
        let h = d[3].sub(d[1]);
        let t3 = h.fma(2.0, f);
        let t4 = h.fma(-2.0, f);
        let t5 = d[1].fma(4.0, d[3].fma(-5.0, d[5]));
        [t0, t1, t2, t3, t4, t5]
    }
    #[inline(always)]
    fn at<L: Lane>(m: [L; 6]) -> [L; 4] {
        let a = m[1].add(m[2]);
        let b = m[1].sub(m[2]);
        let c = m[3].add(m[4]);
        let d = m[3].sub(m[4]);
        [m[0].add(a).add(c), d.fma(2.0, b), c.fma(4.0, a), d.fma(8.0, b).add(m[5])]
    }
}

/// 2-D input transform of one tile `d` (`A×A`): `Bᵀ d B`, element `(i, j)`
/// at `[i][j]`.
#[inline(always)]
fn input_tile<K: Kind, L: Lane>(d: &[[L; 6]; 6]) -> [[L; 6]; 6] {
    let z = L::zero();
    let mut t = [[z; 6]; 6];
    for r in 0..K::A {
        t[r] = K::bt(d[r]);
    }
    let mut v = [[z; 6]; 6];
    for j in 0..K::A {
        let col = K::bt(std::array::from_fn(|r| if r < K::A { t[r][j] } else { z }));
        for i in 0..K::A {
            v[i][j] = col[i];
        }
    }
    v
}

/// 2-D output transform `Aᵀ m A` of one tile's elements `m` (`A×A`).
#[inline(always)]
fn output_tile<K: Kind, L: Lane>(m: &[[L; 6]; 6]) -> [[L; 4]; 4] {
    let z = L::zero();
    let mut s = [[z; 4]; 6];
    for i in 0..K::A {
        s[i] = K::at(m[i]);
    }
    let mut y = [[z; 4]; 4];
    for q in 0..K::M {
        let col = K::at(std::array::from_fn(|i| if i < K::A { s[i][q] } else { z }));
        for p in 0..K::M {
            y[p][q] = col[p];
        }
    }
    y
}

/// Portable input transform, one tile at a time.
fn input_portable<K: Kind>(p: &Plan, x: &[f32], g0: usize, g1: usize, c0: usize, c1: usize, v: *mut f32) {
    let a = K::A;
    for g in g0..g1 {
        let t = g - g0;
        let (img, ty, tx) = p.tile_pos(g);
        for ci in c0..c1 {
            let plane = &x[(img * p.c_in + ci) * p.h * p.w..][..p.h * p.w];
            let mut d = [[0.0f32; 6]; 6];
            for (r, dr) in d.iter_mut().enumerate().take(a) {
                let y = (p.s * ty + r) as isize - p.pt as isize;
                if y < 0 || y >= p.h as isize {
                    continue;
                }
                for (k, dk) in dr.iter_mut().enumerate().take(a) {
                    let xx = (p.s * tx + k) as isize - p.pl as isize;
                    if xx >= 0 && xx < p.w as isize {
                        *dk = plane[y as usize * p.w + xx as usize];
                    }
                }
            }
            let vt = input_tile::<K, f32>(&d);
            for (i, row) in vt.iter().enumerate().take(a) {
                for (j, &val) in row.iter().enumerate().take(a) {
                    // SAFETY: element (i·a+j, ci, t) of this block's V.
                    unsafe { *v.add(((i * a + j) * p.c_in + ci) * p.tld + t) = val };
                }
            }
        }
    }
}

/// Portable output transform of tiles `g0..g1`, channels `co0..co1`; `m`
/// holds the chunk starting at channel `cb`.
#[allow(clippy::too_many_arguments)]
fn output_portable<K: Kind>(
    p: &Plan,
    m: *const f32,
    g0: usize,
    g1: usize,
    cb: usize,
    co0: usize,
    co1: usize,
    ep: &Epi,
    out: *mut f32,
) {
    let a = K::A;
    for g in g0..g1 {
        let t = g - g0;
        let (img, ty, tx) = p.tile_pos(g);
        for co in co0..co1 {
            let mut mm = [[0.0f32; 6]; 6];
            for (i, mi) in mm.iter_mut().enumerate().take(a) {
                for (j, mij) in mi.iter_mut().enumerate().take(a) {
                    // SAFETY: element (i·a+j, co-cb, t) of the M chunk.
                    *mij = unsafe { *m.add(((i * a + j) * CH + co - cb) * p.tld + t) };
                }
            }
            let y = output_tile::<K, f32>(&mm);
            let bv = ep.bias.map_or(0.0, |b| b[co]);
            for (pp, yr) in y.iter().enumerate().take(K::M) {
                let oy = p.s * ty + pp;
                if oy >= p.oh {
                    break;
                }
                for (q, &yv) in yr.iter().enumerate().take(K::M) {
                    let ox = p.s * tx + q;
                    if ox >= p.ow {
                        break;
                    }
                    // SAFETY: output pixel of this task's (tile, channel).
                    unsafe {
                        let o = out.add(((img * p.c_out + co) * p.oh + oy) * p.ow + ox);
                        let mut val = yv + bv;
                        if ep.accumulate {
                            val += *o;
                        }
                        *o = ep.act.apply(val);
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    //! AVX-512 transforms (16 tiles of a tile row per vector) and GEMM kernel.

    use super::{CH, Epi, Kind, Lane, MR, Plan, input_tile, output_tile, segs};
    use crate::act::{Act, bias_act};
    use std::arch::x86_64::*;

    #[derive(Clone, Copy)]
    pub(super) struct Z(__m512);

    impl Lane for Z {
        #[inline(always)]
        fn zero() -> Z {
            // SAFETY: only instantiated inside AVX-512 functions.
            Z(unsafe { _mm512_setzero_ps() })
        }
        #[inline(always)]
        fn add(self, o: Z) -> Z {
            // SAFETY: as above.
            Z(unsafe { _mm512_add_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn sub(self, o: Z) -> Z {
            // SAFETY: as above.
            Z(unsafe { _mm512_sub_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn fma(self, k: f32, c: Z) -> Z {
            // SAFETY: as above.
            Z(unsafe { _mm512_fmadd_ps(self.0, _mm512_set1_ps(k), c.0) })
        }
    }

    static PAIR01: [i32; 16] = [0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29];
    static PAIR23: [i32; 16] = [2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31];
    static EVEN: [i32; 16] = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30];
    static ODD: [i32; 16] = [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31];
    static SH_A: [i32; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
    static SH_B: [i32; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17];
    static I_LO: [i32; 16] = [0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23];
    static I_HI: [i32; 16] = [8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31];
    static J_LO: [i32; 16] = [0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23];
    static J_HI: [i32; 16] = [8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31];

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn idx(a: &[i32; 16]) -> __m512i {
        // SAFETY: 16 readable i32.
        unsafe { _mm512_loadu_si512(a.as_ptr().cast()) }
    }

    /// Masked load (masked-off lanes are not accessed).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn ldm(m: u16, p: *const f32) -> __m512 {
        // SAFETY: the caller guarantees the unmasked lanes are readable.
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }

    /// Mask of lanes `lo..hi` (clamped to 0..16).
    #[inline]
    fn lanes(lo: isize, hi: isize) -> u16 {
        let (lo, hi) = (lo.clamp(0, 16), hi.clamp(0, 16));
        if hi <= lo { 0 } else { ((1u32 << hi) - (1u32 << lo)) as u16 }
    }

    /// Input transform of tiles `g0..g1`, channels `c0..c1` into `v`.
    ///
    /// # Safety
    /// AVX-512F available; `x` holds the whole input; `v` holds a block's V.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn input<K: Kind>(
        p: &Plan,
        x: *const f32,
        g0: usize,
        g1: usize,
        c0: usize,
        c1: usize,
        v: *mut f32,
    ) {
        let (a, s) = (K::A, K::M);
        let (pair01, pair23, even, odd) = (idx(&PAIR01), idx(&PAIR23), idx(&EVEN), idx(&ODD));
        let (sh_a, sh_b) = (idx(&SH_A), idx(&SH_B));
        let tp = (g1 - g0).next_multiple_of(16);
        let z = Z::zero();
        for seg in segs(p, g0, g1) {
            let xs = (s * seg.tx) as isize - p.pl as isize;
            // Row loads cover columns xs .. xs + 16·nreg, masked to the row.
            let lm: [u16; 5] =
                std::array::from_fn(|r| lanes(-xs - 16 * r as isize, p.w as isize - xs - 16 * r as isize));
            // The block's last segment also fills the padding columns up to
            // tp (finite values) so the GEMM never sees stale data.
            let sn = if seg.toff + seg.n == g1 - g0 { tp - seg.toff } else { seg.n };
            let sm = lanes(0, sn as isize);
            let y0 = (s * seg.ty) as isize - p.pt as isize;
            for ci in c0..c1 {
                // SAFETY: plane (img, ci) of the input.
                let plane = unsafe { x.add((seg.img * p.c_in + ci) * p.h * p.w) };
                let mut d = [[z; 6]; 6];
                for (r, dr) in d.iter_mut().enumerate().take(a) {
                    let y = y0 + r as isize;
                    if y < 0 || y >= p.h as isize {
                        continue;
                    }
                    // SAFETY: row y of the plane; the masked loads only touch
                    // columns 0..w of that row.
                    let row = unsafe { plane.add(y as usize * p.w) }.wrapping_offset(xs);
                    // SAFETY (ld): masked lanes are inside the row (see above).
                    let ld = |r: usize| unsafe { ldm(lm[r], row.wrapping_add(16 * r)) };
                    if a == 6 {
                        let (z0, z1, z2, z3, z4) = (ld(0), ld(1), ld(2), ld(3), ld(4));
                        let pa = _mm512_permutex2var_ps(z0, pair01, z1);
                        let pb = _mm512_permutex2var_ps(z2, pair01, z3);
                        let d0 = _mm512_shuffle_f32x4::<0x44>(pa, pb);
                        let d1 = _mm512_shuffle_f32x4::<0xEE>(pa, pb);
                        let pa = _mm512_permutex2var_ps(z0, pair23, z1);
                        let pb = _mm512_permutex2var_ps(z2, pair23, z3);
                        let d2 = _mm512_shuffle_f32x4::<0x44>(pa, pb);
                        let d3 = _mm512_shuffle_f32x4::<0xEE>(pa, pb);
                        let d4 = _mm512_permutex2var_ps(d0, sh_a, z4);
                        let d5 = _mm512_permutex2var_ps(d1, sh_b, z4);
                        *dr = [Z(d0), Z(d1), Z(d2), Z(d3), Z(d4), Z(d5)];
                    } else {
                        let (z0, z1, z2) = (ld(0), ld(1), ld(2));
                        let d0 = _mm512_permutex2var_ps(z0, even, z1);
                        let d1 = _mm512_permutex2var_ps(z0, odd, z1);
                        let d2 = _mm512_permutex2var_ps(d0, sh_a, z2);
                        let d3 = _mm512_permutex2var_ps(d1, sh_b, z2);
                        *dr = [Z(d0), Z(d1), Z(d2), Z(d3), z, z];
                    }
                }
                let vt = input_tile::<K, Z>(&d);
                for (i, vr) in vt.iter().enumerate().take(a) {
                    for (j, vv) in vr.iter().enumerate().take(a) {
                        // SAFETY: row (i·a+j, ci) of V, columns toff..toff+sn ≤ tld.
                        unsafe {
                            _mm512_mask_storeu_ps(
                                v.add(((i * a + j) * p.c_in + ci) * p.tld + seg.toff),
                                sm,
                                vv.0,
                            )
                        };
                    }
                }
            }
        }
    }

    /// `acc` → `act(acc)` for the activations done in registers (all but
    /// Sigmoid, which is applied afterwards on the stored row).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn act_vec(v: __m512, act: Act) -> __m512 {
        let zero = _mm512_setzero_ps();
        let one = _mm512_set1_ps(1.0);
        match act {
            Act::None | Act::Sigmoid => v,
            Act::Relu => _mm512_max_ps(zero, v),
            Act::Clip { min, max } => {
                _mm512_min_ps(_mm512_set1_ps(max), _mm512_max_ps(_mm512_set1_ps(min), v))
            }
            Act::LeakyRelu(al) => {
                let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, zero);
                _mm512_mask_mul_ps(v, neg, v, _mm512_set1_ps(al))
            }
            Act::HardSigmoid { alpha, beta } => {
                let t = _mm512_fmadd_ps(v, _mm512_set1_ps(alpha), _mm512_set1_ps(beta));
                _mm512_min_ps(one, _mm512_max_ps(zero, t))
            }
            Act::HardSwish => {
                let t = _mm512_fmadd_ps(v, _mm512_set1_ps(1.0 / 6.0), _mm512_set1_ps(0.5));
                _mm512_mul_ps(v, _mm512_min_ps(one, _mm512_max_ps(zero, t)))
            }
        }
    }

    /// Output transform of tiles `g0..g1`, channels `co0..co1`; `m` holds the
    /// chunk starting at channel `cb`.
    ///
    /// # Safety
    /// AVX-512F available; `m` holds an M chunk; `out` the whole output, of
    /// which this call's (tiles, channels) are not accessed concurrently.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn output<K: Kind>(
        p: &Plan,
        m: *const f32,
        g0: usize,
        g1: usize,
        cb: usize,
        co0: usize,
        co1: usize,
        ep: &Epi,
        out: *mut f32,
    ) {
        let (a, s) = (K::A, K::M);
        let (i_lo, i_hi, j_lo, j_hi) = (idx(&I_LO), idx(&I_HI), idx(&J_LO), idx(&J_HI));
        let ld_e = CH * p.tld;
        let post = matches!(ep.act, Act::Sigmoid);
        for seg in segs(p, g0, g1) {
            let lm = lanes(0, seg.n as isize);
            let ncols = (s * seg.n).min(p.ow - s * seg.tx);
            let om: [u16; 4] = std::array::from_fn(|r| lanes(0, ncols as isize - 16 * r as isize));
            for co in co0..co1 {
                // SAFETY: column toff of row co-cb of the chunk; loads masked to
                // the segment's tiles.
                let mb = unsafe { m.add((co - cb) * p.tld + seg.toff) };
                let mut mm = [[Z::zero(); 6]; 6];
                for (i, mi) in mm.iter_mut().enumerate().take(a) {
                    for (j, mij) in mi.iter_mut().enumerate().take(a) {
                        *mij = Z(unsafe { _mm512_maskz_loadu_ps(lm, mb.add((i * a + j) * ld_e)) });
                    }
                }
                let y = output_tile::<K, Z>(&mm);
                let bv = _mm512_set1_ps(ep.bias.map_or(0.0, |b| b[co]));
                for (pp, yr) in y.iter().enumerate().take(s) {
                    let oy = s * seg.ty + pp;
                    if oy >= p.oh {
                        break;
                    }
                    let rows = if s == 4 {
                        let a0 = _mm512_permutex2var_ps(yr[0].0, i_lo, yr[1].0);
                        let a1 = _mm512_permutex2var_ps(yr[0].0, i_hi, yr[1].0);
                        let b0 = _mm512_permutex2var_ps(yr[2].0, i_lo, yr[3].0);
                        let b1 = _mm512_permutex2var_ps(yr[2].0, i_hi, yr[3].0);
                        [
                            _mm512_permutex2var_ps(a0, j_lo, b0),
                            _mm512_permutex2var_ps(a0, j_hi, b0),
                            _mm512_permutex2var_ps(a1, j_lo, b1),
                            _mm512_permutex2var_ps(a1, j_hi, b1),
                        ]
                    } else {
                        let r0 = _mm512_permutex2var_ps(yr[0].0, i_lo, yr[1].0);
                        let r1 = _mm512_permutex2var_ps(yr[0].0, i_hi, yr[1].0);
                        [r0, r1, r0, r1]
                    };
                    // SAFETY: output row oy of (img, co), columns s·tx.. (masked
                    // to ncols, which stays inside the row).
                    let dst = unsafe { out.add(((seg.img * p.c_out + co) * p.oh + oy) * p.ow + s * seg.tx) };
                    for (r, &row) in rows.iter().enumerate().take(s) {
                        if om[r] == 0 {
                            break;
                        }
                        let dp = unsafe { dst.add(16 * r) };
                        let mut val = _mm512_add_ps(row, bv);
                        if ep.accumulate {
                            val = _mm512_add_ps(val, unsafe { _mm512_maskz_loadu_ps(om[r], dp) });
                        }
                        unsafe { _mm512_mask_storeu_ps(dp, om[r], act_vec(val, ep.act)) };
                    }
                    if post {
                        // SAFETY: the ncols outputs just written.
                        bias_act(unsafe { std::slice::from_raw_parts_mut(dst, ncols) }, 0.0, ep.act);
                    }
                }
            }
        }
    }

    /// `c[MR × 16·NV] = a[k][MR]ᵀ · b[k × 16·NV]` (row strides `ldb`, `ldc`).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn ukern<const NV: usize>(
        k: usize,
        a: *const f32,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); NV]; MR];
        let (mut ap, mut bp) = (a, b);
        for _ in 0..k {
            // SAFETY: the caller guarantees k rows of a (MR) and b (16·NV).
            unsafe {
                let bv: [__m512; NV] = std::array::from_fn(|v| _mm512_loadu_ps(bp.add(16 * v)));
                for (r, accr) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*ap.add(r));
                    for (accv, &bvv) in accr.iter_mut().zip(&bv) {
                        *accv = _mm512_fmadd_ps(av, bvv, *accv);
                    }
                }
                ap = ap.add(MR);
                bp = bp.add(ldb);
            }
        }
        for (r, accr) in acc.iter().enumerate() {
            for (v, &accv) in accr.iter().enumerate() {
                // SAFETY: MR rows of 16·NV columns of c.
                unsafe { _mm512_storeu_ps(c.add(r * ldc + 16 * v), accv) };
            }
        }
    }

    /// GEMMs of weight panels `pc..pe` (one M chunk) over `tp` tile columns.
    ///
    /// # Safety
    /// AVX-512F available; `v` holds a block's V with `tp ≤ tld` columns
    /// initialised; `m` holds an M chunk.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gemm_chunk(
        p: &Plan,
        u: &[f32],
        v: *const f32,
        pc: usize,
        pe: usize,
        tp: usize,
        m: *mut f32,
    ) {
        for e in 0..p.e_n {
            for pn in pc..pe {
                let ap = u[((pn * p.e_n + e) * p.c_in) * MR..].as_ptr();
                // SAFETY: V[e] holds c_in rows of tld ≥ tp columns; the chunk
                // holds CH ≥ (pe-pc)·MR rows per element.
                unsafe {
                    let bp = v.add(e * p.c_in * p.tld);
                    let cp = m.add((e * CH + (pn - pc) * MR) * p.tld);
                    let mut col = 0;
                    while col < tp {
                        let nv = ((tp - col) / 16).min(3);
                        let (b, c) = (bp.add(col), cp.add(col));
                        match nv {
                            3 => ukern::<3>(p.c_in, ap, b, p.tld, c, p.tld),
                            2 => ukern::<2>(p.c_in, ap, b, p.tld, c, p.tld),
                            _ => ukern::<1>(p.c_in, ap, b, p.tld, c, p.tld),
                        }
                        col += 16 * nv;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// The closed form agrees with greedy largest-first assignment.
    #[test]
    fn makespan_matches_greedy() {
        for groups in 0usize..60 {
            for gpb in 1..9 {
                for threads in 1..6 {
                    let mut load = vec![0usize; threads];
                    for b in 0..groups.div_ceil(gpb) {
                        *load.iter_mut().min().unwrap() += gpb.min(groups - b * gpb);
                    }
                    let want = load.into_iter().max().unwrap_or(0);
                    assert_eq!(super::makespan(groups, gpb, threads), want, "{groups} {gpb} {threads}");
                }
            }
        }
    }
}
