//! Window geometry shared by Conv, ConvTranspose and pooling: attribute defaults, `auto_pad`,
//! `ceil_mode` and output sizes, for concrete sizes (eval) and for symbolic dims (infer).

use crate::ir::{AutoPad, Dim};
use anyhow::{Result, bail};

/// Resolved window attributes for `rank` spatial axes.
#[derive(Clone, Debug)]
pub(crate) struct Window {
    /// Kernel size per axis.
    pub kernel: Vec<usize>,
    /// Strides per axis.
    pub strides: Vec<usize>,
    /// Dilations per axis.
    pub dilations: Vec<usize>,
    /// Explicit pads: begins then ends (ignored unless `auto_pad` is `NotSet`).
    pub pads: Vec<usize>,
    /// Auto padding mode.
    pub auto_pad: AutoPad,
    /// Round the output size up (pooling).
    pub ceil_mode: bool,
}

/// One attribute per axis, `default` when empty; errors on a wrong length or a zero.
pub(crate) fn per_axis(v: &[usize], rank: usize, default: usize, name: &str) -> Result<Vec<usize>> {
    if v.is_empty() {
        return Ok(vec![default; rank]);
    }
    if v.len() != rank {
        bail!("{name} {v:?} has {} values, expected {rank} (one per spatial axis)", v.len());
    }
    if default > 0 && v.contains(&0) {
        bail!("{name} {v:?} must be positive");
    }
    Ok(v.to_vec())
}

/// Explicit pads (`2 * rank` values, begins then ends), zeros when empty.
pub(crate) fn pads_attr(v: &[usize], rank: usize) -> Result<Vec<usize>> {
    if v.is_empty() {
        return Ok(vec![0; 2 * rank]);
    }
    if v.len() != 2 * rank {
        bail!("pads {v:?} has {} values, expected {} (begins then ends)", v.len(), 2 * rank);
    }
    Ok(v.to_vec())
}

impl Window {
    /// Validates attributes against `kernel.len()` spatial axes.
    pub fn new(
        kernel: Vec<usize>,
        strides: &[usize],
        dilations: &[usize],
        pads: &[usize],
        auto_pad: AutoPad,
        ceil_mode: bool,
    ) -> Result<Window> {
        let rank = kernel.len();
        if kernel.contains(&0) {
            bail!("kernel shape {kernel:?} must be positive");
        }
        Ok(Window {
            strides: per_axis(strides, rank, 1, "strides")?,
            dilations: per_axis(dilations, rank, 1, "dilations")?,
            pads: pads_attr(pads, rank)?,
            kernel,
            auto_pad,
            ceil_mode,
        })
    }

    /// Number of spatial axes.
    pub fn rank(&self) -> usize {
        self.kernel.len()
    }

    /// Dilated kernel extent on axis `i`.
    pub fn extent(&self, i: usize) -> usize {
        (self.kernel[i] - 1) * self.dilations[i] + 1
    }

    /// Output size and (pad begin, pad end) on axis `i` for an input of size `n`.
    pub fn axis(&self, i: usize, n: usize) -> Result<(usize, usize, usize)> {
        let (s, ek) = (self.strides[i], self.extent(i));
        match self.auto_pad {
            AutoPad::SameUpper | AutoPad::SameLower => {
                let out = n.div_ceil(s);
                let total = ((out.max(1) - 1) * s + ek).saturating_sub(n);
                let small = total / 2;
                let (pb, pe) = if self.auto_pad == AutoPad::SameUpper {
                    (small, total - small)
                } else {
                    (total - small, small)
                };
                Ok((out, pb, pe))
            }
            AutoPad::Valid | AutoPad::NotSet => {
                let (pb, pe) = if self.auto_pad == AutoPad::Valid {
                    (0, 0)
                } else {
                    (self.pads[i], self.pads[self.rank() + i])
                };
                let ext = n + pb + pe;
                if ext < ek {
                    bail!(
                        "window of extent {ek} (kernel {}, dilation {}) does not fit spatial axis {i} of size {n} \
                         with pads ({pb}, {pe})",
                        self.kernel[i],
                        self.dilations[i]
                    );
                }
                let mut out = if self.ceil_mode { (ext - ek).div_ceil(s) + 1 } else { (ext - ek) / s + 1 };
                if self.ceil_mode && out > 1 && (out - 1) * s >= n + pb {
                    out -= 1;
                }
                Ok((out, pb, pe))
            }
        }
    }

    /// Output sizes and pads (begins, ends) for concrete input spatial sizes.
    pub fn resolve(&self, input: &[usize]) -> Result<(Vec<usize>, Vec<usize>, Vec<usize>)> {
        let mut out = Vec::with_capacity(input.len());
        let mut pb = Vec::with_capacity(input.len());
        let mut pe = Vec::with_capacity(input.len());
        for (i, &n) in input.iter().enumerate() {
            let (o, b, e) = self.axis(i, n)?;
            out.push(o);
            pb.push(b);
            pe.push(e);
        }
        Ok((out, pb, pe))
    }

    /// Output dim on axis `i` for a possibly symbolic input dim: computed when known, the same
    /// symbol when the window preserves sizes, `Unknown` otherwise.
    pub fn infer_axis(&self, i: usize, d: &Dim) -> Result<Dim> {
        if let Dim::Known(n) = d {
            return Ok(Dim::Known(self.axis(i, *n)?.0));
        }
        let ek = self.extent(i);
        let keeps = self.strides[i] == 1
            && match self.auto_pad {
                AutoPad::SameUpper | AutoPad::SameLower => true,
                AutoPad::Valid => ek == 1,
                AutoPad::NotSet => self.pads[i] + self.pads[self.rank() + i] + 1 == ek,
            };
        Ok(if keeps { d.clone() } else { Dim::Unknown })
    }
}

/// ConvTranspose geometry on one axis: returns (output size, pad begin), where the pad begin
/// is the number of leading positions of the full transposed output that are dropped.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_transpose_axis(
    n: usize,
    k: usize,
    s: usize,
    d: usize,
    out_pad: usize,
    pads: (usize, usize),
    output_shape: Option<usize>,
    auto_pad: AutoPad,
) -> Result<(usize, usize)> {
    let full = (s * (n.max(1) - 1) + out_pad + (k - 1) * d + 1) as i64;
    let full = if n == 0 { 0 } else { full };
    let target = match (output_shape, auto_pad) {
        (Some(o), _) => Some(o),
        (None, AutoPad::SameUpper | AutoPad::SameLower) => Some(n * s),
        _ => None,
    };
    if let Some(o) = target {
        let total = full - o as i64;
        let half = total.div_euclid(2);
        let pb = if auto_pad == AutoPad::SameUpper { half } else { total - half };
        if pb < 0 {
            bail!("output size {o} needs {} leading padding, which is not supported", pb);
        }
        return Ok((o, pb as usize));
    }
    let (pb, pe) = if auto_pad == AutoPad::Valid { (0, 0) } else { pads };
    let out = full - (pb + pe) as i64;
    if out <= 0 {
        bail!("pads ({pb}, {pe}) remove the whole output of size {full}");
    }
    Ok((out as usize, pb))
}
