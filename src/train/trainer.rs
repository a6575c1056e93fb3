//! A training session over one model: the training graph on the runtime, the parameters,
//! the optimiser, masks and hooks.

use crate::autodiff::{self, LOSS_OUTPUT, PRED_OUTPUT, TrainGraph, TrainSpec};
use crate::ir::Graph;
use crate::runtime::{RunOptions, Runtime};
use crate::tensor::{DType, Tensor};
use crate::train::optim::Optimizer;
use anyhow::{Context, Result, anyhow, bail};

/// Called after every optimiser step; may change parameters (projection, quantisation,
/// re-pruning). Parameters come as (name, values) pairs.
pub trait TrainHook: Send {
    /// Runs after step `step` (counted from 1).
    fn after_step(&mut self, step: u64, params: &mut [(&str, &mut [f32])]) -> Result<()>;
}

/// Result of one training step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepResult {
    /// Mean loss over the batch.
    pub loss: f32,
    /// Samples whose arg-max prediction equals the label (0 when the target is not labels).
    pub correct: usize,
    /// Samples in the batch.
    pub count: usize,
}

/// A model being trained.
pub struct Trainer {
    forward: Graph,
    tg: TrainGraph,
    rt: Runtime,
    params: Vec<Tensor>,
    states: Vec<Tensor>,
    masks: Vec<Option<Vec<f32>>>,
    hooks: Vec<Box<dyn TrainHook>>,
    /// The optimiser.
    pub optimizer: Optimizer,
    step: u64,
    seed: u64,
}

impl Trainer {
    /// Prepares `forward` for training with `spec`, starting from its current weights.
    pub fn new(
        forward: &Graph,
        spec: &TrainSpec,
        optimizer: Optimizer,
        threads: usize,
        seed: u64,
    ) -> Result<Trainer> {
        let tg = autodiff::build(forward, spec)?;
        let rt = Runtime::new(tg.graph.clone(), RunOptions { threads, optimize: true })
            .context("planning the training graph")?;
        let konst = |name: &str| -> Result<Tensor> {
            forward
                .find(name)
                .and_then(|v| forward.fact(v).konst.clone())
                .ok_or_else(|| anyhow!("the model has no constant \"{name}\""))
        };
        let params = tg.params.iter().map(|p| konst(&p.name)).collect::<Result<Vec<_>>>()?;
        let states = tg.states.iter().map(|s| konst(&s.name)).collect::<Result<Vec<_>>>()?;
        let masks = vec![None; params.len()];
        Ok(Trainer {
            forward: forward.clone(),
            tg,
            rt,
            params,
            states,
            masks,
            hooks: vec![],
            optimizer,
            step: 0,
            seed,
        })
    }

    /// The training graph.
    pub fn train_graph(&self) -> &TrainGraph {
        &self.tg
    }

    /// Names of the trained parameters.
    pub fn param_names(&self) -> Vec<String> {
        self.tg.params.iter().map(|p| p.name.clone()).collect()
    }

    /// Number of trained scalars.
    pub fn param_count(&self) -> usize {
        self.params.iter().map(|p| p.len()).sum()
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Sets the step counter (when resuming).
    pub fn set_steps(&mut self, step: u64) {
        self.step = step;
    }

    /// The batch size the training graph was built for.
    pub fn batch(&self) -> usize {
        self.tg.graph.fact(self.tg.graph.inputs()[0]).shape.first().and_then(|d| d.known()).unwrap_or(0)
    }

    /// Checks that samples of `sample_shape` fit the model's input and that the model has at
    /// least `classes` outputs; a clear error otherwise.
    pub fn check_data(&self, sample_shape: &[usize], classes: usize) -> Result<()> {
        let g = &self.tg.graph;
        let inp = g.fact(g.inputs()[0]);
        let want = inp.concrete_shape().unwrap_or_default();
        let per: usize = sample_shape.iter().product();
        if want.len() < 2 || want[1..].iter().product::<usize>() != per {
            bail!(
                "data samples {:?} do not fit the model input \"{}\" {}",
                sample_shape,
                g.value(g.inputs()[0]).name,
                inp
            );
        }
        let pred = g.fact(g.outputs()[PRED_OUTPUT]);
        if let Some(c) = pred.shape.last().and_then(|d| d.known())
            && c < classes
        {
            bail!("the model predicts {c} classes but the data has {classes}");
        }
        Ok(())
    }

    /// Keeps parameter `name` multiplied by `mask` (0/1 values, same size): masked weights
    /// get no gradient and stay zero, as pruning needs.
    pub fn set_mask(&mut self, name: &str, mask: Vec<f32>) -> Result<()> {
        let i = self.index(name)?;
        if mask.len() != self.params[i].len() {
            bail!(
                "mask for \"{name}\" has {} values, the parameter has {}",
                mask.len(),
                self.params[i].len()
            );
        }
        let p = self.params[i].as_mut_slice::<f32>().expect("f32 parameter");
        p.iter_mut().zip(&mask).for_each(|(v, m)| *v *= m);
        self.masks[i] = Some(mask);
        Ok(())
    }

    /// Adds a hook run after every step.
    pub fn add_hook(&mut self, hook: Box<dyn TrainHook>) {
        self.hooks.push(hook);
    }

    fn index(&self, name: &str) -> Result<usize> {
        self.tg.params.iter().position(|p| p.name == name).ok_or_else(|| {
            anyhow!("\"{name}\" is not a trained parameter (trained: {})", self.param_names().join(", "))
        })
    }

    /// Current value of a parameter or running statistic by name.
    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        let p = self.tg.params.iter().position(|p| p.name == name).map(|i| &self.params[i]);
        p.or_else(|| self.tg.states.iter().position(|s| s.name == name).map(|i| &self.states[i]))
    }

    /// Replaces a parameter or running statistic (checkpoint restore).
    pub fn set_tensor(&mut self, name: &str, t: Tensor) -> Result<()> {
        let slot = if let Some(i) = self.tg.params.iter().position(|p| p.name == name) {
            &mut self.params[i]
        } else if let Some(i) = self.tg.states.iter().position(|s| s.name == name) {
            &mut self.states[i]
        } else {
            bail!("the model has no trained tensor \"{name}\"");
        };
        if slot.shape() != t.shape() || t.dtype() != DType::F32 {
            bail!("\"{name}\" is float32{:?}, the checkpoint has {}{:?}", slot.shape(), t.dtype(), t.shape());
        }
        *slot = t;
        Ok(())
    }

    /// Runs the training graph on one batch without updating anything: (loss, prediction, grads).
    pub fn forward_backward(&self, x: Tensor, target: Tensor) -> Result<Vec<Tensor>> {
        let inputs = self.inputs(x, target)?;
        self.rt.run(inputs)
    }

    fn inputs(&self, x: Tensor, target: Tensor) -> Result<Vec<Tensor>> {
        let mut inputs: Vec<Option<Tensor>> = vec![None; self.tg.graph.inputs().len()];
        let want = self.tg.graph.fact(self.tg.graph.inputs()[0]).concrete_shape().unwrap_or_default();
        let x = if x.shape() != want.as_slice() && x.len() == want.iter().product::<usize>() {
            x.reshape(want)?
        } else {
            x
        };
        inputs[0] = Some(x);
        inputs[self.tg.target_input] = Some(target);
        if let Some(s) = self.tg.seed_input {
            inputs[s] = Some(Tensor::scalar((self.seed ^ self.step.wrapping_mul(0x9E37_79B9)) as i64));
        }
        for (p, t) in self.tg.params.iter().zip(&self.params) {
            inputs[p.input] = Some(t.clone());
        }
        for (s, t) in self.tg.states.iter().zip(&self.states) {
            inputs[s.input] = Some(t.clone());
        }
        Ok(inputs.into_iter().map(|t| t.expect("every input set")).collect())
    }

    /// Runs forward and backward once, timing every node of the training graph.
    pub fn profile_step(&self, x: Tensor, target: Tensor) -> Result<Vec<crate::runtime::NodeTime>> {
        let inputs = self.inputs(x, target)?;
        Ok(self.rt.profile(inputs)?.1)
    }

    /// One optimisation step at learning rate `lr`. A non-finite loss is an error and leaves
    /// the parameters unchanged.
    pub fn step(&mut self, x: Tensor, target: Tensor, lr: f32) -> Result<StepResult> {
        let labels = target.to_i64_vec().filter(|_| target.dtype().is_int());
        let count = x.shape().first().copied().unwrap_or(0);
        let mut outs = self.forward_backward(x, target)?;
        let loss = outs[LOSS_OUTPUT].f32s()?[0];
        if !loss.is_finite() {
            bail!("the loss became {loss} at step {}", self.step + 1);
        }
        let correct = match &labels {
            Some(l) => count_correct(&outs[PRED_OUTPUT], l)?,
            None => 0,
        };
        let mut grads: Vec<Tensor> = self
            .tg
            .params
            .iter()
            .map(|p| std::mem::replace(&mut outs[p.grad_output], Tensor::scalar(0f32)))
            .collect();
        for (g, m) in grads.iter_mut().zip(&self.masks) {
            if let Some(m) = m {
                let gs = g.as_mut_slice::<f32>().ok_or_else(|| anyhow!("gradient is not float32"))?;
                gs.iter_mut().zip(m).for_each(|(v, m)| *v *= m);
            }
        }
        {
            let mut ps: Vec<&mut [f32]> =
                self.params.iter_mut().map(|p| p.as_mut_slice::<f32>().expect("f32 parameter")).collect();
            let gs: Vec<&[f32]> = grads.iter().map(|g| g.f32s()).collect::<Result<_>>()?;
            self.optimizer.step(lr, &mut ps, &gs)?;
        }
        for (p, m) in self.params.iter_mut().zip(&self.masks) {
            if let Some(m) = m {
                let ps = p.as_mut_slice::<f32>().expect("f32 parameter");
                ps.iter_mut().zip(m).for_each(|(v, m)| *v *= m);
            }
        }
        for (s, st) in self.tg.states.iter().zip(self.states.iter_mut()) {
            *st = std::mem::replace(&mut outs[s.output], Tensor::scalar(0f32));
        }
        self.step += 1;
        if !self.hooks.is_empty() {
            let names: Vec<String> = self.param_names();
            let mut view: Vec<(&str, &mut [f32])> = names
                .iter()
                .map(|n| n.as_str())
                .zip(self.params.iter_mut().map(|p| p.as_mut_slice::<f32>().expect("f32 parameter")))
                .collect();
            for h in &mut self.hooks {
                h.after_step(self.step, &mut view)?;
            }
        }
        Ok(StepResult { loss, correct, count })
    }

    /// The forward model with the current weights and running statistics. An error names
    /// any trained tensor that the forward model no longer has as a constant.
    pub fn model(&self) -> Result<Graph> {
        let mut g = self.forward.clone();
        let named = self.tg.params.iter().map(|p| &p.name).zip(&self.params);
        let states = self.tg.states.iter().map(|s| &s.name).zip(&self.states);
        let mut p = crate::ir::Patch::new();
        for (name, t) in named.chain(states) {
            let Some(v) = g.find(name) else {
                bail!("the model has no constant \"{name}\" to write the trained values of");
            };
            p.replace_const(v, t.clone());
        }
        p.apply(&mut g).context("writing the trained weights into the model")?;
        Ok(g)
    }
}

/// Rows of `logits` ([N, C]) whose arg-max equals the label.
pub fn count_correct(logits: &Tensor, labels: &[i64]) -> Result<usize> {
    let z = logits.f32s()?;
    let n = labels.len();
    if n == 0 || z.len() % n != 0 {
        bail!("prediction {:?} does not fit {} labels", logits.shape(), n);
    }
    let c = z.len() / n;
    Ok(z.chunks(c).zip(labels).filter(|(row, l)| argmax(row) == **l as usize).count())
}

/// Index of the largest value (first on ties; NaN never wins).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{BatchNorm, Dim, Op};
    use crate::train::optim::OptimizerKind;

    /// Running statistics carry over from step to step: after k steps on the same batch the
    /// running mean is (1 − 0.9^k) × the batch mean, and the exported model holds it.
    #[test]
    fn running_statistics_accumulate_across_steps() {
        let mut g = Graph::new();
        let x = g.add_input("x", DType::F32, vec![Dim::Sym("N".into()), Dim::Known(2)]);
        let c = |g: &mut Graph, n: &str, v: Vec<f32>| g.add_const(n, Tensor::from_vec(vec![v.len()], v));
        let (s, b) = (c(&mut g, "bn.scale", vec![1.0, 1.0]), c(&mut g, "bn.bias", vec![0.0, 0.0]));
        let (m, v) = (c(&mut g, "bn.mean", vec![0.0, 0.0]), c(&mut g, "bn.var", vec![1.0, 1.0]));
        let bn = Op::BatchNorm(BatchNorm { epsilon: 1e-5, momentum: 0.9, training: false });
        let y = g.add_node("bn", bn, vec![Some(x), Some(s), Some(b), Some(m), Some(v)]).unwrap()[0];
        let w = g.add_const("w", Tensor::from_vec(vec![2, 2], vec![1f32, 0., 0., 1.]));
        let z = g.add_node("mm", Op::MatMul, vec![Some(y), Some(w)]).unwrap()[0];
        g.set_outputs(vec![z]);
        let opt = Optimizer::new(OptimizerKind::Sgd { momentum: 0.0, nesterov: false }, 0.0);
        let mut tr = Trainer::new(&g, &TrainSpec::classification(2), opt, 1, 0).unwrap();
        let xb = Tensor::from_vec(vec![2, 2], vec![1f32, 3., 3., 5.]); // channel means 2 and 4
        let lab = Tensor::from_vec(vec![2], vec![0i64, 1]);
        for _ in 0..3 {
            tr.step(xb.clone(), lab.clone(), 0.0).unwrap();
        }
        let k = 1.0 - 0.9f32.powi(3);
        let mean = tr.tensor("bn.mean").unwrap().f32s().unwrap().to_vec();
        assert!((mean[0] - 2.0 * k).abs() < 1e-5 && (mean[1] - 4.0 * k).abs() < 1e-5, "{mean:?}");
        let model = tr.model().unwrap();
        let exported =
            model.fact(model.find("bn.mean").unwrap()).konst.as_ref().unwrap().f32s().unwrap().to_vec();
        assert_eq!(exported, mean);
        // Unbiased batch variance (PyTorch convention): 2 per channel here.
        let var = tr.tensor("bn.var").unwrap().f32s().unwrap().to_vec();
        let want = 0.9f32.powi(3) + 2.0 * k;
        assert!((var[0] - want).abs() < 1e-4, "{var:?} vs {want}");
    }
}
