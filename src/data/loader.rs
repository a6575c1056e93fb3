//! Batching for training: seeded shuffling, normalisation, augmentation and a prefetching iterator.
//!
//! Everything random (sample order, crop offsets, flips) is a pure function of
//! `(LoaderOptions::seed, epoch)` and the sample index, computed with SplitMix64, so batches are
//! reproducible whatever the thread count or `prefetch` setting.
use super::{Dataset, Samples};
use crate::tensor::Tensor;
use anyhow::{Result, bail};
use rayon::prelude::*;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

/// Pixel/feature preprocessing: `value = (raw * scale - mean[c]) / std[c]`, where `c` indexes the
/// first axis of the sample shape (the channel of a CHW image; each feature of an `[F]` vector).
///
/// `mean` and `std` have 0 entries (0 and 1), 1 entry (used for every channel) or one per channel.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Normalize {
    /// Factor applied to raw values first; `None` means 1/255 for u8 samples and 1 for f32 samples.
    pub scale: Option<f32>,
    /// Subtracted after scaling.
    pub mean: Vec<f32>,
    /// Divisor after subtracting the mean; must be finite and non-zero.
    pub std: Vec<f32>,
}

impl Normalize {
    /// Default scale with the given per-channel (or single) mean and std.
    pub fn mean_std(mean: Vec<f32>, std: Vec<f32>) -> Normalize {
        Normalize { scale: None, mean, std }
    }
    /// The scale used for `ds`: the explicit one, else 1/255 for u8 samples and 1 for f32.
    pub fn scale_for(&self, ds: &Dataset) -> f32 {
        self.scale.unwrap_or(match ds.x {
            Samples::U8(_) => 1.0 / 255.0,
            Samples::F32(_) => 1.0,
        })
    }
}

/// Augmentation for images (samples of rank >= 2, the last two axes are H and W): a random crop of
/// the original size out of the image zero-padded by `crop_pad` pixels on every side (raw value 0,
/// before normalisation), then a horizontal flip with probability 0.5 when `hflip` is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Augment {
    /// Zero padding on each side before the random crop; 0 disables cropping.
    pub crop_pad: usize,
    /// Flip left-right with probability 0.5.
    pub hflip: bool,
}

/// How [`epoch_batches`] cuts a dataset into batches.
#[derive(Clone, Debug, PartialEq)]
pub struct LoaderOptions {
    /// Samples per batch (> 0).
    pub batch: usize,
    /// Shuffle the order every epoch (else dataset order).
    pub shuffle: bool,
    /// Drop the last batch when it is smaller than `batch`.
    pub drop_last: bool,
    /// Seed of the shuffling and augmentation.
    pub seed: u64,
    /// Preprocessing of the values.
    pub normalize: Normalize,
    /// Augmentation (training only, typically).
    pub augment: Option<Augment>,
    /// Batches queued ahead by the background thread; 0 assembles each batch on the caller's
    /// thread when it is asked for (still parallel across samples).
    pub prefetch: usize,
}

impl Default for LoaderOptions {
    /// Batch 64, shuffled, last batch kept, seed 0, default normalisation, no augmentation,
    /// 2 batches prefetched.
    fn default() -> Self {
        LoaderOptions {
            batch: 64,
            shuffle: true,
            drop_last: false,
            seed: 0,
            normalize: Normalize::default(),
            augment: None,
            prefetch: 2,
        }
    }
}

/// One batch: `x` f32 `[B, sample_shape...]`, `y` i64 `[B]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Preprocessed samples.
    pub x: Tensor,
    /// Labels.
    pub y: Tensor,
    /// Dataset indices of the samples, in batch order.
    pub idx: Vec<usize>,
}

/// Number of batches one epoch over `len` samples yields.
pub fn num_batches(len: usize, opts: &LoaderOptions) -> usize {
    match opts.batch {
        0 => 0,
        b if opts.drop_last => len / b,
        b => len.div_ceil(b),
    }
}

/// SplitMix64: a tiny, fixed, well-mixed generator (results never change with crate versions).
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0), by the multiply-shift method.
    fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

fn mix(a: u64, b: u64) -> u64 {
    SplitMix(SplitMix(a).next_u64() ^ b).next_u64()
}

/// The sample order of one epoch: a seeded Fisher-Yates permutation, or `0..len`.
pub fn epoch_order(len: usize, shuffle: bool, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    if shuffle {
        let mut rng = SplitMix(mix(mix(seed, epoch), 1));
        for i in (1..len).rev() {
            order.swap(i, rng.below(i + 1));
        }
    }
    order
}

/// Everything needed to build any batch of one epoch.
struct Plan {
    ds: Arc<Dataset>,
    order: Vec<usize>,
    batch: usize,
    count: usize,
    /// Per channel: value = raw * mul + add.
    mul: Vec<f32>,
    add: Vec<f32>,
    /// Values per channel (product of the sample shape after the first axis).
    inner: usize,
    /// `(planes, h, w)` when augmenting.
    geom: Option<(usize, usize, usize)>,
    aug: Augment,
    aug_key: u64,
}

impl Plan {
    fn new(ds: Arc<Dataset>, opts: &LoaderOptions, epoch: u64) -> Result<Plan> {
        if opts.batch == 0 {
            bail!("batch size must be at least 1");
        }
        ds.validate()?;
        let shape = &ds.sample_shape;
        let c = shape[0];
        let inner = ds.sample_len() / c;
        let per_channel = |v: &[f32], default: f32, what: &str| -> Result<Vec<f32>> {
            match v.len() {
                0 => Ok(vec![default; c]),
                1 => Ok(vec![v[0]; c]),
                n if n == c => Ok(v.to_vec()),
                n => bail!(
                    "normalisation {what} has {n} values but samples of shape {shape:?} have {c} channels \
                     (give 1 or {c})"
                ),
            }
        };
        let norm = &opts.normalize;
        let mean = per_channel(&norm.mean, 0.0, "mean")?;
        let std = per_channel(&norm.std, 1.0, "std")?;
        if let Some(s) = std.iter().find(|s| !s.is_finite() || **s == 0.0) {
            bail!("normalisation std {s} must be finite and non-zero");
        }
        let scale = norm.scale_for(&ds);
        let mul = std.iter().map(|s| scale / s).collect();
        let add = mean.iter().zip(&std).map(|(m, s)| -m / s).collect();
        let geom = match opts.augment {
            Some(a) if a.crop_pad > 0 || a.hflip => {
                let r = shape.len();
                if r < 2 {
                    bail!("augmentation needs image samples (C, H, W), got sample shape {shape:?}");
                }
                Some((shape[..r - 2].iter().product(), shape[r - 2], shape[r - 1]))
            }
            _ => None,
        };
        let key = mix(opts.seed, epoch);
        Ok(Plan {
            order: epoch_order(ds.len(), opts.shuffle, opts.seed, epoch),
            count: num_batches(ds.len(), opts),
            batch: opts.batch,
            mul,
            add,
            inner,
            geom,
            aug: opts.augment.unwrap_or_default(),
            aug_key: mix(key, 2),
            ds,
        })
    }

    fn build(&self, b: usize) -> Batch {
        let n = self.ds.len();
        let idx = self.order[b * self.batch..((b + 1) * self.batch).min(n)].to_vec();
        let per = self.ds.sample_len();
        let mut x = vec![0f32; idx.len() * per];
        x.par_chunks_mut(per).zip(idx.par_iter()).for_each(|(dst, &i)| match &self.ds.x {
            Samples::U8(v) => self.fill(&v[i * per..(i + 1) * per], dst, i),
            Samples::F32(v) => self.fill(&v[i * per..(i + 1) * per], dst, i),
        });
        let y = idx.iter().map(|&i| self.ds.labels[i]).collect();
        let mut shape = vec![idx.len()];
        shape.extend_from_slice(&self.ds.sample_shape);
        Batch { x: Tensor::from_vec(shape, x), y: Tensor::from_vec(vec![idx.len()], y), idx }
    }

    /// Writes one preprocessed (and possibly augmented) sample.
    fn fill<T: Copy + Into<f32>>(&self, src: &[T], dst: &mut [f32], sample: usize) {
        let Some((planes, h, w)) = self.geom else {
            for (ch, (d, s)) in dst.chunks_mut(self.inner).zip(src.chunks(self.inner)).enumerate() {
                let (m, a) = (self.mul[ch], self.add[ch]);
                for (d, &s) in d.iter_mut().zip(s) {
                    *d = s.into() * m + a;
                }
            }
            return;
        };
        let mut rng = SplitMix(mix(self.aug_key, sample as u64));
        let pad = self.aug.crop_pad;
        let (dy, dx) = if pad > 0 { (rng.below(2 * pad + 1), rng.below(2 * pad + 1)) } else { (pad, pad) };
        let flip = self.aug.hflip && rng.next_u64() >> 63 == 1;
        for p in 0..planes {
            let base = p * h * w;
            for y in 0..h {
                let ch = (base + y * w) / self.inner;
                let (m, a) = (self.mul[ch], self.add[ch]);
                let row = &mut dst[base + y * w..base + (y + 1) * w];
                let sy = (y + dy).checked_sub(pad).filter(|&sy| sy < h);
                for (x, d) in row.iter_mut().enumerate() {
                    let xx = if flip { w - 1 - x } else { x };
                    let sx = (xx + dx).checked_sub(pad).filter(|&sx| sx < w);
                    let raw = match (sy, sx) {
                        (Some(sy), Some(sx)) => src[base + sy * w + sx].into(),
                        _ => 0.0,
                    };
                    *d = raw * m + a;
                }
            }
        }
    }
}

/// Iterator over the batches of one epoch (see [`epoch_batches`]). Dropping it early stops the
/// background thread.
pub struct EpochBatches {
    plan: Arc<Plan>,
    next: usize,
    rx: Option<Receiver<Batch>>,
    worker: Option<JoinHandle<()>>,
}

/// Batches of one epoch over `ds`: the order and augmentation depend only on `(opts.seed, epoch)`.
/// With `opts.prefetch > 0` a background thread assembles batches (each in parallel across samples
/// with rayon) into a bounded queue of `prefetch` batches, so training does not wait on
/// preprocessing. Fails on bad options (batch 0, mean/std lengths that do not match the channels,
/// zero std, augmentation of non-image samples) or an invalid dataset.
pub fn epoch_batches(ds: Arc<Dataset>, opts: &LoaderOptions, epoch: u64) -> Result<EpochBatches> {
    let plan = Arc::new(Plan::new(ds, opts, epoch)?);
    let (rx, worker) = if opts.prefetch > 0 && plan.count > 0 {
        let (tx, rx) = sync_channel(opts.prefetch);
        let p = plan.clone();
        let worker = std::thread::Builder::new().name("pare-loader".into()).spawn(move || {
            for b in 0..p.count {
                if tx.send(p.build(b)).is_err() {
                    return; // the iterator was dropped
                }
            }
        })?;
        (Some(rx), Some(worker))
    } else {
        (None, None)
    };
    Ok(EpochBatches { plan, next: 0, rx, worker })
}

impl std::fmt::Debug for EpochBatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EpochBatches {{ batch {} of {}, prefetching: {} }}",
            self.next,
            self.plan.count,
            self.rx.is_some()
        )
    }
}

impl EpochBatches {
    /// Number of batches of the whole epoch.
    pub fn num_batches(&self) -> usize {
        self.plan.count
    }
}

impl Iterator for EpochBatches {
    type Item = Batch;
    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.plan.count {
            return None;
        }
        let batch = match &self.rx {
            Some(rx) => match rx.recv() {
                Ok(b) => b,
                Err(_) => {
                    // The worker ended before sending every batch: it panicked; pass that on.
                    if let Some(Err(e)) = self.worker.take().map(|w| w.join()) {
                        std::panic::resume_unwind(e);
                    }
                    return None;
                }
            },
            None => self.plan.build(self.next),
        };
        self.next += 1;
        Some(batch)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.plan.count - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for EpochBatches {}

impl Drop for EpochBatches {
    fn drop(&mut self) {
        self.rx = None; // unblocks a worker waiting to send
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
