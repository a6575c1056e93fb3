//! Datasets for training: on-disk formats, the `--data` argument, and a batching loader.
//!
//! - [`parse_spec`] turns a `--data` string into a [`DataSpec`]; [`load`] reads one [`Split`] of it
//!   into an in-memory [`Dataset`] (u8 images in CHW order or f32 feature vectors, i64 labels).
//! - Formats: MNIST idx (also Fashion-MNIST; [`idx`]), image folders as a directory or a streamed
//!   `.tar.gz` ([`folder`]), `.npz` arrays and CSV tables ([`tabular`]).
//! - [`epoch_batches`] yields shuffled, normalised, optionally augmented [`Batch`]es for one epoch,
//!   assembled in parallel on a background thread ([`loader`]).

pub mod folder;
pub mod idx;
pub mod loader;
pub mod tabular;

pub use idx::{load_mnist_split, parse_idx, read_idx};
pub use loader::{Augment, Batch, EpochBatches, LoaderOptions, Normalize, epoch_batches, num_batches};

use anyhow::{Result, bail};
use std::fmt;
use std::path::{Path, PathBuf};

/// Raw samples kept in memory, `len * prod(sample_shape)` values in sample-major order:
/// images as u8 (0..255) or arbitrary f32 features.
#[derive(Clone, Debug, PartialEq)]
pub enum Samples {
    /// 8-bit pixels (images), default scale 1/255.
    U8(Vec<u8>),
    /// Real-valued features, default scale 1.
    F32(Vec<f32>),
}

impl Samples {
    /// Number of stored values (all samples together).
    pub fn len(&self) -> usize {
        match self {
            Samples::U8(v) => v.len(),
            Samples::F32(v) => v.len(),
        }
    }
    /// True when no value is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An in-memory labelled dataset.
#[derive(Clone, PartialEq)]
pub struct Dataset {
    /// The samples, one after the other.
    pub x: Samples,
    /// Shape of one sample: CHW for images, `[F]` for feature vectors.
    pub sample_shape: Vec<usize>,
    /// One label per sample, each in `0..classes.len()`.
    pub labels: Vec<i64>,
    /// Class names; their number is the number of classes.
    pub classes: Vec<String>,
}

impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.x {
            Samples::U8(_) => "u8",
            Samples::F32(_) => "f32",
        };
        write!(
            f,
            "Dataset {{ {} samples of {kind} {:?}, {} classes {:?} }}",
            self.len(),
            self.sample_shape,
            self.classes.len(),
            self.classes
        )
    }
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Number of classes (`classes.len()`).
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }
    /// Number of values in one sample (product of `sample_shape`).
    pub fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }
    /// The samples at `idx`, in that order (indices may repeat); same shape and classes.
    ///
    /// Panics if an index is `>= len()` (indices come from the caller's code, not from data).
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let n = self.sample_len();
        fn pick<T: Copy>(v: &[T], idx: &[usize], n: usize) -> Vec<T> {
            let mut out = Vec::with_capacity(idx.len() * n);
            for &i in idx {
                out.extend_from_slice(&v[i * n..(i + 1) * n]);
            }
            out
        }
        let x = match &self.x {
            Samples::U8(v) => Samples::U8(pick(v, idx, n)),
            Samples::F32(v) => Samples::F32(pick(v, idx, n)),
        };
        Dataset {
            x,
            sample_shape: self.sample_shape.clone(),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            classes: self.classes.clone(),
        }
    }
    /// Checks that the dataset is usable: at least one sample and one class, a sample shape with no
    /// zero dimension, `len * prod(sample_shape)` stored values and every label in `0..num_classes`.
    pub fn validate(&self) -> Result<()> {
        if self.is_empty() {
            bail!("dataset is empty (no samples)");
        }
        if self.classes.is_empty() {
            bail!("dataset has {} samples but no classes", self.len());
        }
        if self.sample_shape.is_empty() || self.sample_shape.contains(&0) {
            bail!("bad sample shape {:?}: needs at least one dimension and no zero", self.sample_shape);
        }
        let want = self.len().checked_mul(self.sample_len());
        if want != Some(self.x.len()) {
            bail!(
                "dataset of {} samples of shape {:?} needs {} values, has {}",
                self.len(),
                self.sample_shape,
                want.map_or("too many".to_string(), |w| w.to_string()),
                self.x.len()
            );
        }
        let k = self.num_classes() as i64;
        if let Some((i, &l)) = self.labels.iter().enumerate().find(|&(_, &l)| l < 0 || l >= k) {
            bail!("label {l} of sample {i} is out of range: {k} classes need labels in 0..{k}");
        }
        Ok(())
    }
    /// Number of samples of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.num_classes()];
        for &l in &self.labels {
            if let Some(slot) = usize::try_from(l).ok().and_then(|l| c.get_mut(l)) {
                *slot += 1;
            }
        }
        c
    }
    /// Per-channel mean and standard deviation of the raw values times `scale` (channel = first
    /// axis of `sample_shape`: C for CHW images, each feature for `[F]`); useful for [`Normalize`].
    pub fn channel_stats(&self, scale: f32) -> (Vec<f32>, Vec<f32>) {
        let c = self.sample_shape.first().copied().unwrap_or(1).max(1);
        let inner = self.sample_len() / c;
        let mut sum = vec![0f64; c];
        let mut sq = vec![0f64; c];
        let mut acc = |i: usize, v: f64| {
            let ch = (i / inner.max(1)) % c;
            sum[ch] += v;
            sq[ch] += v * v;
        };
        match &self.x {
            Samples::U8(v) => v.iter().enumerate().for_each(|(i, &p)| acc(i, p as f64)),
            Samples::F32(v) => v.iter().enumerate().for_each(|(i, &p)| acc(i, p as f64)),
        }
        let n = (self.len() * inner).max(1) as f64;
        let s = scale as f64;
        let mean: Vec<f32> = sum.iter().map(|&t| (t / n * s) as f32).collect();
        let std = sum
            .iter()
            .zip(&sq)
            .map(|(&t, &q)| ((q / n - (t / n) * (t / n)).max(0.0).sqrt() * s.abs()) as f32)
            .collect();
        (mean, std)
    }
}

/// A parsed `--data` argument: where a dataset lives and in which format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSpec {
    /// A directory with `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]` (MNIST, Fashion-MNIST).
    Mnist(PathBuf),
    /// A directory, or a `.tar.gz`/`.tgz` archive, with `{train,test}/<class>/*.{png,jpg,jpeg}`
    /// (in an archive the `train`/`test` folders may sit under a common root such as `cifar10/`).
    Folder(PathBuf),
    /// A `.npz` file with arrays `x`, `y` (both splits) or `x_train`, `y_train`, `x_test`, `y_test`.
    Npz(PathBuf),
    /// A CSV file, one row per sample, label in the column named `label` (with a header) or in the
    /// first column; or a directory with `train.csv` and `test.csv`.
    Csv(PathBuf),
}

impl DataSpec {
    /// The path the spec points at.
    pub fn path(&self) -> &Path {
        match self {
            DataSpec::Mnist(p) | DataSpec::Folder(p) | DataSpec::Npz(p) | DataSpec::Csv(p) => p,
        }
    }
}

impl fmt::Display for DataSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            DataSpec::Mnist(_) => "mnist",
            DataSpec::Folder(_) => "folder",
            DataSpec::Npz(_) => "npz",
            DataSpec::Csv(_) => "csv",
        };
        write!(f, "{kind}:{}", self.path().display())
    }
}

const ACCEPTED: &str = "accepted forms: mnist:DIR, fashion-mnist:DIR (idx files), folder:DIR|FILE.tar.gz, \
cifar10:DIR|FILE.tar.gz (image folders {train,test}/<class>/*.png|jpg), npz:FILE.npz, csv:FILE.csv|DIR, \
or a bare path whose kind is guessed from its extension or contents";

/// Parses a `--data` argument: `mnist:PATH`, `fashion-mnist:PATH`, `folder:PATH`, `cifar10:PATH`
/// (same as folder), `npz:PATH`, `csv:PATH`, or a bare existing path whose kind is guessed:
/// `.npz`, `.csv`, `.tar.gz`/`.tgz` by extension; a directory by its contents (idx files → mnist,
/// `train.csv`/`test.csv` → csv, `train/` or `test/` folders → folder).
/// Prefixed paths are not checked here; [`load`] reports missing files.
pub fn parse_spec(s: &str) -> Result<DataSpec> {
    let s = s.trim();
    if s.is_empty() {
        bail!("empty --data argument; {ACCEPTED}");
    }
    if let Some((kind, rest)) = s.split_once(':') {
        let path = PathBuf::from(rest);
        let known = match kind.to_ascii_lowercase().as_str() {
            "mnist" | "fashion-mnist" | "fashion_mnist" | "fashionmnist" => Some(DataSpec::Mnist(path)),
            "folder" | "imagefolder" | "cifar10" | "cifar-10" => Some(DataSpec::Folder(path)),
            "npz" => Some(DataSpec::Npz(path)),
            "csv" => Some(DataSpec::Csv(path)),
            _ => None,
        };
        match known {
            Some(_) if rest.is_empty() => bail!("--data {s:?} has no path after '{kind}:'; {ACCEPTED}"),
            Some(spec) => return Ok(spec),
            // A path that itself contains ':' is still accepted when it exists.
            None if !Path::new(s).exists() => bail!("unknown data kind {kind:?} in --data {s:?}; {ACCEPTED}"),
            None => {}
        }
    }
    guess(Path::new(s))
}

/// Guesses the format of a bare path (see [`parse_spec`]).
fn guess(p: &Path) -> Result<DataSpec> {
    let name = p.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    if !p.exists() {
        bail!("--data {}: no such file or directory; {ACCEPTED}", p.display());
    }
    if p.is_file() {
        if name.ends_with(".npz") {
            return Ok(DataSpec::Npz(p.into()));
        }
        if name.ends_with(".csv") {
            return Ok(DataSpec::Csv(p.into()));
        }
        if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            return Ok(DataSpec::Folder(p.into()));
        }
        bail!("--data {}: cannot tell the format from the file name; {ACCEPTED}", p.display());
    }
    let has = |f: &str| p.join(f).exists();
    if has("train-images-idx3-ubyte.gz")
        || has("train-images-idx3-ubyte")
        || has("t10k-images-idx3-ubyte.gz")
        || has("t10k-images-idx3-ubyte")
    {
        return Ok(DataSpec::Mnist(p.into()));
    }
    if has("train.csv") || has("test.csv") {
        return Ok(DataSpec::Csv(p.into()));
    }
    if p.join("train").is_dir() || p.join("test").is_dir() {
        return Ok(DataSpec::Folder(p.into()));
    }
    bail!(
        "--data {}: directory has no idx files, no train.csv/test.csv and no train/ or test/ folder; {ACCEPTED}",
        p.display()
    )
}

/// Which part of a dataset to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training split (`train`, `x_train`, `train.csv`).
    Train,
    /// The test split (`t10k` for idx files, `test`, `x_test`, `test.csv`).
    Test,
}

impl Split {
    /// `"train"` or `"test"`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// Loads one split of a dataset into memory and validates it ([`Dataset::validate`]).
pub fn load(spec: &DataSpec, split: Split) -> Result<Dataset> {
    let ds = match spec {
        DataSpec::Mnist(dir) => load_mnist(dir, split)?,
        DataSpec::Folder(p) => folder::load_folder(p, split)?,
        DataSpec::Npz(p) => tabular::load_npz(p, split)?,
        DataSpec::Csv(p) => tabular::load_csv(p, split)?,
    };
    ds.validate().map_err(|e| e.context(format!("{} split of {spec}", split.name())))?;
    Ok(ds)
}

/// MNIST-format idx files → u8 `[1, rows, cols]` samples; classes are the digits `"0".."9"`
/// (more if a label is larger than 9).
fn load_mnist(dir: &Path, split: Split) -> Result<Dataset> {
    if !dir.is_dir() {
        bail!("mnist data directory {} does not exist", dir.display());
    }
    let (x, y) = load_mnist_split(dir, split == Split::Train)?;
    let shape = x.shape().to_vec();
    let labels: Vec<i64> = y.as_slice::<u8>().unwrap_or_default().iter().map(|&l| l as i64).collect();
    let k = labels.iter().copied().max().map_or(10, |m| (m as usize + 1).max(10));
    let x = x.into_vec::<u8>().unwrap_or_default();
    Ok(Dataset {
        x: Samples::U8(x),
        sample_shape: vec![1, shape[1], shape[2]],
        labels,
        classes: numbered_classes(k),
    })
}

/// Classes `"0".."k-1"` for integer labels.
pub(crate) fn numbered_classes(k: usize) -> Vec<String> {
    (0..k).map(|i| i.to_string()).collect()
}

/// A fresh empty directory under the system temp dir for a test (removed by the caller).
#[cfg(test)]
pub(crate) fn test_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pare-data-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// True when the unit tests run under CI (`CI` is `true` in any case, or `1`): a missing
/// prerequisite then fails instead of skipping. The integration tests' `tests/common::in_ci`
/// uses the same rule.
#[cfg(test)]
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// `../shared/data/<sub>` relative to the crate root if it exists; otherwise fails under CI
/// (see [`in_ci`]) and returns `None` (with a SKIP message) elsewhere.
#[cfg(test)]
pub(crate) fn shared_data(sub: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data").join(sub);
    if p.exists() {
        return Some(p);
    }
    assert!(!in_ci(), "{} is required under CI (CI=true or CI=1)", p.display());
    eprintln!("SKIP: {} not found", p.display());
    None
}

#[cfg(test)]
mod tests;
