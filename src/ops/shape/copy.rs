//! Generic data-movement kernels over `T: Elem`: strided views (transpose, slice, expand),
//! concat/split blocks, gather, tile and index-mapped copies (pad, nearest resize).
//! Contiguous inner runs are copied with `extend_from_slice`.

use crate::tensor::{Elem, numel, strides};

/// Copies a strided view of `src` into a new row-major buffer: element at output coords `c`
/// is `src[base + sum(c[i] * st[i])]`. Strides may be 0 (broadcast) or negative (reversed).
pub(crate) fn strided<T: Elem>(src: &[T], base: isize, dims: &[usize], st: &[isize]) -> Vec<T> {
    let total = numel(dims);
    let mut out = Vec::with_capacity(total);
    if total == 0 {
        return out;
    }
    // Drop size-1 axes, then merge axes that are contiguous with their successor.
    let mut d: Vec<usize> = vec![];
    let mut s: Vec<isize> = vec![];
    for (&n, &k) in dims.iter().zip(st) {
        if n == 1 {
            continue;
        }
        match (d.last_mut(), s.last_mut()) {
            (Some(pd), Some(ps)) if *ps == k * n as isize => {
                *pd *= n;
                *ps = k;
            }
            _ => {
                d.push(n);
                s.push(k);
            }
        }
    }
    let r = d.len();
    if r == 0 {
        out.push(src[base as usize]);
        return out;
    }
    let (n_last, s_last) = (d[r - 1], s[r - 1]);
    if s_last == 1 {
        for_each_offset(base, &d[..r - 1], &s[..r - 1], |o| {
            out.extend_from_slice(&src[o as usize..o as usize + n_last])
        });
    } else if s_last == 0 {
        for_each_offset(base, &d[..r - 1], &s[..r - 1], |o| {
            out.extend(std::iter::repeat_n(src[o as usize], n_last))
        });
    } else if r >= 2 && s[r - 2] == 1 {
        // A transpose of the last two axes: copy in tiles to stay in cache.
        const B: usize = 32;
        let n_prev = d[r - 2];
        for_each_offset(base, &d[..r - 2], &s[..r - 2], |o| {
            let start = out.len();
            out.resize(start + n_prev * n_last, src[o as usize]);
            let dst = &mut out[start..];
            for i0 in (0..n_prev).step_by(B) {
                for j0 in (0..n_last).step_by(B) {
                    for i in i0..(i0 + B).min(n_prev) {
                        for j in j0..(j0 + B).min(n_last) {
                            dst[i * n_last + j] = src[(o + i as isize + j as isize * s_last) as usize];
                        }
                    }
                }
            }
        });
    } else {
        for_each_offset(base, &d[..r - 1], &s[..r - 1], |o| {
            out.extend((0..n_last as isize).map(|j| src[(o + j * s_last) as usize]))
        });
    }
    out
}

/// Calls `f` with the source offset of every index of `dims` (row-major order).
fn for_each_offset(base: isize, dims: &[usize], st: &[isize], mut f: impl FnMut(isize)) {
    if dims.contains(&0) {
        return;
    }
    let r = dims.len();
    let mut c = vec![0usize; r];
    let mut off = base;
    loop {
        f(off);
        let mut i = r;
        loop {
            if i == 0 {
                return;
            }
            i -= 1;
            c[i] += 1;
            off += st[i];
            if c[i] < dims[i] {
                break;
            }
            off -= st[i] * dims[i] as isize;
            c[i] = 0;
        }
    }
}

/// Permutes axes: output axis `j` is input axis `perm[j]`.
pub(crate) fn transpose<T: Elem>(src: &[T], shape: &[usize], perm: &[usize]) -> Vec<T> {
    let st = strides(shape);
    let dims: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let s: Vec<isize> = perm.iter().map(|&p| st[p] as isize).collect();
    strided(src, 0, &dims, &s)
}

/// Broadcasts `src` of `shape` to `out` (numpy rules; `out` is already the broadcast shape).
pub(crate) fn broadcast_to<T: Elem>(src: &[T], shape: &[usize], out: &[usize]) -> Vec<T> {
    let off = out.len() - shape.len();
    let st = strides(shape);
    let s: Vec<isize> = (0..out.len())
        .map(|i| if i < off || shape[i - off] == 1 { 0 } else { st[i - off] as isize })
        .collect();
    strided(src, 0, out, &s)
}

/// Joins blocks: each part is `outer` blocks of `inners[i]` elements, interleaved in order.
pub(crate) fn concat<T: Elem>(parts: &[&[T]], outer: usize, inners: &[usize]) -> Vec<T> {
    let mut out = Vec::with_capacity(outer * inners.iter().sum::<usize>());
    for o in 0..outer {
        for (p, &n) in parts.iter().zip(inners) {
            out.extend_from_slice(&p[o * n..(o + 1) * n]);
        }
    }
    out
}

/// Takes `len` elements at offset `off` from each of `outer` rows of `row` elements.
pub(crate) fn block<T: Elem>(src: &[T], outer: usize, row: usize, off: usize, len: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(outer * len);
    for o in 0..outer {
        out.extend_from_slice(&src[o * row + off..o * row + off + len]);
    }
    out
}

/// Gather: for each outer row, the `inner`-long runs at the (already checked) indices.
pub(crate) fn gather<T: Elem>(src: &[T], outer: usize, dim: usize, inner: usize, idx: &[usize]) -> Vec<T> {
    let mut out = Vec::with_capacity(outer * idx.len() * inner);
    for o in 0..outer {
        let base = o * dim * inner;
        if inner == 1 {
            out.extend(idx.iter().map(|&i| src[base + i]));
        } else {
            for &i in idx {
                out.extend_from_slice(&src[base + i * inner..base + (i + 1) * inner]);
            }
        }
    }
    out
}

/// GatherElements: output coords `c` read `src` at `c` with axis `axis` replaced by the index.
pub(crate) fn gather_elements<T: Elem>(
    src: &[T],
    shape: &[usize],
    axis: usize,
    idx_shape: &[usize],
    idx: &[usize],
) -> Vec<T> {
    let st = strides(shape);
    let r = idx_shape.len();
    let mut out = Vec::with_capacity(idx.len());
    let mut c = vec![0usize; r];
    for &ix in idx {
        let off: usize = (0..r).map(|i| if i == axis { ix * st[i] } else { c[i] * st[i] }).sum();
        out.push(src[off]);
        for i in (0..r).rev() {
            c[i] += 1;
            if c[i] < idx_shape[i] {
                break;
            }
            c[i] = 0;
        }
    }
    out
}

/// Repeats the tensor `reps[i]` times along each axis.
pub(crate) fn tile<T: Elem>(src: &[T], shape: &[usize], reps: &[usize]) -> Vec<T> {
    let mut cur = src.to_vec();
    let mut dims = shape.to_vec();
    for a in (0..dims.len()).rev() {
        if reps[a] == 1 {
            continue;
        }
        let outer = numel(&dims[..a]);
        let blk = numel(&dims[a..]);
        let mut next = Vec::with_capacity(outer * blk * reps[a]);
        for o in 0..outer {
            for _ in 0..reps[a] {
                next.extend_from_slice(&cur[o * blk..(o + 1) * blk]);
            }
        }
        cur = next;
        dims[a] *= reps[a];
    }
    cur
}

/// Copies through per-axis index maps: output index `j` on axis `a` reads input index
/// `maps[a][j]`, or `fill` where that is `None`.
pub(crate) fn mapped<T: Elem>(src: &[T], shape: &[usize], maps: &[Vec<Option<usize>>], fill: T) -> Vec<T> {
    let out_dims: Vec<usize> = maps.iter().map(|m| m.len()).collect();
    let total = numel(&out_dims);
    let mut out = Vec::with_capacity(total);
    let r = maps.len();
    if total == 0 {
        return out;
    }
    if r == 0 {
        out.push(src[0]);
        return out;
    }
    // Runs of consecutive sources on the last axis: (source start or None for fill, length).
    let mut runs: Vec<(Option<usize>, usize)> = vec![];
    for &m in &maps[r - 1] {
        match (runs.last_mut(), m) {
            (Some((Some(s), n)), Some(i)) if *s + *n == i => *n += 1,
            (Some((None, n)), None) => *n += 1,
            _ => runs.push((m, 1)),
        }
    }
    let ctx = Mapped { src, st: strides(shape), maps, runs, block: strides(&out_dims), fill };
    ctx.rec(0, 0, &mut out);
    out
}

struct Mapped<'a, T> {
    src: &'a [T],
    st: Vec<usize>,
    maps: &'a [Vec<Option<usize>>],
    runs: Vec<(Option<usize>, usize)>,
    block: Vec<usize>,
    fill: T,
}

impl<T: Elem> Mapped<'_, T> {
    fn rec(&self, axis: usize, off: usize, out: &mut Vec<T>) {
        if axis + 1 == self.maps.len() {
            for &(s, n) in &self.runs {
                match s {
                    Some(s) => out.extend_from_slice(&self.src[off + s..off + s + n]),
                    None => out.resize(out.len() + n, self.fill),
                }
            }
            return;
        }
        for &m in &self.maps[axis] {
            match m {
                Some(i) => self.rec(axis + 1, off + i * self.st[axis], out),
                None => out.resize(out.len() + self.block[axis], self.fill),
            }
        }
    }
}
