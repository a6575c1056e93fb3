//! Accuracy of a classifier on a dataset: top-1, top-5, per class, confusion matrix.

use crate::data::{Dataset, LoaderOptions, Normalize, epoch_batches};
use crate::ir::{Dim, Graph, fmt_shape};
use crate::runtime::{RunOptions, Runtime};
use crate::tensor::{DType, Tensor};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::sync::Arc;

/// What `evaluate` measured.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// Samples evaluated.
    pub samples: usize,
    /// Top-1 accuracy in [0, 1].
    pub top1: f64,
    /// Top-5 accuracy in [0, 1] (equal to 1 with five classes or fewer).
    pub top5: f64,
    /// Mean cross-entropy of the softmax of the outputs.
    pub loss: f64,
    /// Class names.
    pub classes: Vec<String>,
    /// Per class: (correct, total).
    pub per_class: Vec<(usize, usize)>,
    /// confusion[true][predicted] counts (one row per class, one column per model output).
    pub confusion: Vec<Vec<usize>>,
}

/// A runnable classifier: the model fixed to one batch size, checked against the data.
pub struct Classifier {
    rt: Runtime,
    batch: usize,
    sample_shape: Vec<usize>,
}

impl Classifier {
    /// Prepares `model` to classify samples of `sample_shape` in batches of `batch`.
    pub fn new(model: &Graph, sample_shape: &[usize], batch: usize, threads: usize) -> Result<Classifier> {
        if model.inputs().len() != 1 {
            bail!("evaluation needs a model with one input, this one has {}", model.inputs().len());
        }
        let g = crate::passes::set_batch(model, batch)?;
        let inp = g.fact(g.inputs()[0]).clone();
        let want: Vec<Option<usize>> = inp.shape.iter().skip(1).map(Dim::known).collect();
        let per: usize = sample_shape.iter().product();
        let fits =
            want.iter().all(|d| d.is_some()) && want.iter().map(|d| d.unwrap()).product::<usize>() == per;
        if inp.dtype != DType::F32 || !fits {
            bail!(
                "data samples {:?} do not fit the model input \"{}\" {}{}",
                sample_shape,
                g.value(g.inputs()[0]).name,
                inp.dtype,
                fmt_shape(&inp.shape)
            );
        }
        let sample_shape = want.into_iter().map(|d| d.unwrap()).collect();
        let rt = Runtime::new(g, RunOptions { threads, optimize: true })?;
        Ok(Classifier { rt, batch, sample_shape })
    }

    /// Logits `[n, classes]` for `n <= batch` preprocessed samples (padded internally).
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let n = x.shape().first().copied().unwrap_or(0);
        let per: usize = self.sample_shape.iter().product();
        let mut data = x.f32s()?.to_vec();
        data.resize(self.batch * per, 0.0);
        let mut shape = vec![self.batch];
        shape.extend(&self.sample_shape);
        let out = self.rt.run(vec![Tensor::from_vec(shape, data)])?.remove(0);
        let s = out.shape().to_vec();
        if s.len() != 2 || s[0] != self.batch {
            bail!("the model's output {:?} is not [batch, classes]", s);
        }
        let v = out.f32s()?[..n * s[1]].to_vec();
        Ok(Tensor::from_vec(vec![n, s[1]], v))
    }
}

/// Evaluates `model` on `ds` with the given preprocessing.
pub fn evaluate(
    model: &Graph,
    ds: Arc<Dataset>,
    normalize: &Normalize,
    batch: usize,
    threads: usize,
) -> Result<EvalReport> {
    ds.validate()?;
    let clf = Classifier::new(model, &ds.sample_shape, batch, threads)?;
    let opts = LoaderOptions {
        batch,
        shuffle: false,
        drop_last: false,
        seed: 0,
        normalize: normalize.clone(),
        augment: None,
        prefetch: 2,
    };
    let k = ds.num_classes();
    let mut confusion: Vec<Vec<usize>> = Vec::new();
    let (mut top1, mut top5, mut loss) = (0usize, 0usize, 0f64);
    for b in epoch_batches(ds.clone(), &opts, 0)? {
        let z = clf.logits(&b.x).context("running the model")?;
        let c = z.shape()[1];
        if c < k {
            bail!("the model outputs {c} classes but the data has {k}");
        }
        if confusion.is_empty() {
            confusion = vec![vec![0usize; c]; k];
        }
        let labels = b.y.to_i64_vec().unwrap_or_default();
        for (row, &l) in z.f32s()?.chunks(c).zip(&labels) {
            let l = l as usize;
            let pred = super::trainer::argmax(row);
            confusion[l][pred] += 1;
            let better = row.iter().filter(|&&v| v > row[l]).count();
            top1 += (better == 0 && pred == l) as usize;
            top5 += (better < 5) as usize;
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let lse = m as f64 + row.iter().map(|&v| ((v - m) as f64).exp()).sum::<f64>().ln();
            loss += lse - row[l] as f64;
        }
    }
    let n = ds.len();
    let per_class = (0..k).map(|i| (confusion[i][i], confusion[i].iter().sum())).collect();
    Ok(EvalReport {
        samples: n,
        top1: top1 as f64 / n as f64,
        top5: top5 as f64 / n as f64,
        loss: loss / n as f64,
        classes: ds.classes.clone(),
        per_class,
        confusion,
    })
}
