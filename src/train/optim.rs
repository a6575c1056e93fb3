//! Optimisers (SGD with momentum/Nesterov, Adam, AdamW) on plain f32 slices, following the
//! update equations in PyTorch's `torch.optim` documentation (dampening 0, no amsgrad).

use anyhow::{Result, bail};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Which update rule, with its hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// SGD: `d = g + wd p`; with momentum `b = mu b + d` (`b = d` on the first step), then
    /// `d = b`, or `d = d + mu b` with Nesterov; `p -= lr d`.
    Sgd {
        /// Momentum factor `mu` (0 for plain SGD).
        momentum: f32,
        /// Nesterov momentum (needs `momentum > 0`).
        nesterov: bool,
    },
    /// Adam with L2 weight decay added to the gradient: `d = g + wd p`,
    /// `m = b1 m + (1-b1) d`, `v = b2 v + (1-b2) d^2`,
    /// `p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)`.
    Adam {
        /// Decay of the first moment.
        beta1: f32,
        /// Decay of the second moment.
        beta2: f32,
        /// Added to the denominator.
        eps: f32,
    },
    /// AdamW: decoupled decay `p -= lr wd p` first, then Adam's update with `d = g`.
    AdamW {
        /// Decay of the first moment.
        beta1: f32,
        /// Decay of the second moment.
        beta2: f32,
        /// Added to the denominator.
        eps: f32,
    },
}

impl OptimizerKind {
    /// Adam with PyTorch's defaults (0.9, 0.999, 1e-8).
    pub fn adam() -> OptimizerKind {
        OptimizerKind::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }
    /// AdamW with PyTorch's defaults (0.9, 0.999, 1e-8).
    pub fn adamw() -> OptimizerKind {
        OptimizerKind::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }

    fn check(&self) -> Result<()> {
        match *self {
            OptimizerKind::Sgd { momentum, nesterov } => {
                if !(0.0..1.0).contains(&momentum) {
                    bail!("SGD momentum must be in [0, 1), got {momentum}");
                }
                if nesterov && momentum == 0.0 {
                    bail!("Nesterov SGD needs a momentum > 0, got 0");
                }
            }
            OptimizerKind::Adam { beta1, beta2, eps } | OptimizerKind::AdamW { beta1, beta2, eps } => {
                if !(0.0..1.0).contains(&beta1) || !(0.0..1.0).contains(&beta2) {
                    bail!("Adam betas must be in [0, 1), got ({beta1}, {beta2})");
                }
                if eps.is_nan() || eps < 0.0 {
                    bail!("Adam eps must be >= 0, got {eps}");
                }
            }
        }
        Ok(())
    }
}

/// An optimiser's per-parameter state, serialisable for checkpoints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    /// Completed steps (`t` in Adam's bias correction).
    pub step: u64,
    /// Per parameter: SGD's momentum buffer or Adam's first moment (empty until first used).
    pub first: Vec<Vec<f32>>,
    /// Per parameter: Adam's second moment (empty for SGD).
    pub second: Vec<Vec<f32>>,
}

/// An optimiser: an update rule, a weight decay, and per-parameter state sized lazily on the
/// first step. Parameters are identified by their index in the slices passed to `step`.
#[derive(Clone, Debug)]
pub struct Optimizer {
    /// The update rule.
    pub kind: OptimizerKind,
    /// Weight decay (L2 added to the gradient for SGD and Adam, decoupled for AdamW).
    pub weight_decay: f32,
    state: OptimizerState,
}

impl Optimizer {
    /// A fresh optimiser (step 0, no state).
    pub fn new(kind: OptimizerKind, weight_decay: f32) -> Optimizer {
        Optimizer { kind, weight_decay, state: OptimizerState::default() }
    }

    /// Number of steps taken.
    pub fn steps(&self) -> u64 {
        self.state.step
    }

    /// The state, for checkpoints.
    pub fn state(&self) -> &OptimizerState {
        &self.state
    }

    /// Replaces the state with one from a checkpoint.
    pub fn restore(&mut self, state: OptimizerState) -> Result<()> {
        let n = state.first.len();
        let adam = !matches!(self.kind, OptimizerKind::Sgd { .. });
        if adam && state.second.len() != n {
            bail!("Adam state has {} first moments but {} second moments", n, state.second.len());
        }
        if !adam && state.second.iter().any(|v| !v.is_empty()) {
            bail!("the checkpoint holds Adam moments but the optimiser is SGD");
        }
        for (i, (m, v)) in state.first.iter().zip(&state.second).enumerate() {
            if adam && m.len() != v.len() {
                bail!("parameter {i}: first moment has {} values, second {}", m.len(), v.len());
            }
        }
        self.state = state;
        Ok(())
    }

    /// Forgets all state (e.g. after the model's shapes changed).
    pub fn reset(&mut self) {
        self.state = OptimizerState::default();
    }

    /// One update of every parameter `params[i]` with gradient `grads[i]` at learning rate `lr`.
    pub fn step(&mut self, lr: f32, params: &mut [&mut [f32]], grads: &[&[f32]]) -> Result<()> {
        self.kind.check()?;
        if !lr.is_finite() || !self.weight_decay.is_finite() {
            bail!("learning rate {lr} and weight decay {} must be finite", self.weight_decay);
        }
        if params.len() != grads.len() {
            bail!("{} parameters but {} gradients", params.len(), grads.len());
        }
        for (i, (p, g)) in params.iter().zip(grads).enumerate() {
            if p.len() != g.len() {
                bail!("parameter {i} has {} values but its gradient {}", p.len(), g.len());
            }
        }
        let st = &mut self.state;
        if st.first.is_empty() {
            st.first = vec![Vec::new(); params.len()];
            st.second = vec![Vec::new(); params.len()];
        }
        if st.first.len() != params.len() || st.second.len() != params.len() {
            bail!(
                "the optimiser's state is for {} parameters, got {}; reset() it after changing the model",
                st.first.len(),
                params.len()
            );
        }
        for (i, (p, (m, v))) in params.iter().zip(st.first.iter().zip(&st.second)).enumerate() {
            if (!m.is_empty() && m.len() != p.len()) || (!v.is_empty() && v.len() != p.len()) {
                bail!(
                    "parameter {i} has {} values but its optimiser state {}; reset() it after changing the model",
                    p.len(),
                    m.len().max(v.len())
                );
            }
        }
        st.step += 1;
        let (t, wd, kind) = (st.step, self.weight_decay, self.kind);
        params
            .par_iter_mut()
            .zip(grads.par_iter())
            .zip(st.first.par_iter_mut().zip(st.second.par_iter_mut()))
            .for_each(|((p, g), (m, v))| match kind {
                OptimizerKind::Sgd { momentum, nesterov } => sgd(p, g, m, lr, wd, momentum, nesterov),
                OptimizerKind::Adam { beta1, beta2, eps } => {
                    adam(p, g, m, v, t, lr, wd, false, beta1, beta2, eps)
                }
                OptimizerKind::AdamW { beta1, beta2, eps } => {
                    adam(p, g, m, v, t, lr, wd, true, beta1, beta2, eps)
                }
            });
        Ok(())
    }
}

fn sgd(p: &mut [f32], g: &[f32], buf: &mut Vec<f32>, lr: f32, wd: f32, mu: f32, nesterov: bool) {
    if mu == 0.0 {
        for (p, &g) in p.iter_mut().zip(g) {
            *p -= lr * (g + wd * *p);
        }
        return;
    }
    let first = buf.is_empty();
    if first {
        buf.resize(p.len(), 0.0);
    }
    for ((p, &g), b) in p.iter_mut().zip(g).zip(buf.iter_mut()) {
        let d = g + wd * *p;
        *b = if first { d } else { mu * *b + d };
        *p -= lr * if nesterov { d + mu * *b } else { *b };
    }
}

#[allow(clippy::too_many_arguments)]
fn adam(
    p: &mut [f32],
    g: &[f32],
    m: &mut Vec<f32>,
    v: &mut Vec<f32>,
    t: u64,
    lr: f32,
    wd: f32,
    decoupled: bool,
    b1: f32,
    b2: f32,
    eps: f32,
) {
    if m.is_empty() {
        m.resize(p.len(), 0.0);
        v.resize(p.len(), 0.0);
    }
    let bc1 = 1.0 - (b1 as f64).powf(t as f64);
    let bc2 = 1.0 - (b2 as f64).powf(t as f64);
    let step_size = (lr as f64 / bc1) as f32;
    let bc2_sqrt = bc2.sqrt() as f32;
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let d = if decoupled {
            *p *= 1.0 - lr * wd;
            g
        } else {
            g + wd * *p
        };
        *m = b1 * *m + (1.0 - b1) * d;
        *v = b2 * *v + (1.0 - b2) * d * d;
        *p -= step_size * *m / (v.sqrt() / bc2_sqrt + eps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference implementation in f64, transcribing PyTorch's documented algorithms.
    fn reference(
        kind: OptimizerKind,
        wd: f64,
        lr: f64,
        p: &mut [f64],
        grad: &dyn Fn(&[f64]) -> Vec<f64>,
        steps: usize,
    ) {
        let n = p.len();
        let (mut b, mut m, mut v) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        for t in 1..=steps {
            let g = grad(p);
            for i in 0..n {
                match kind {
                    OptimizerKind::Sgd { momentum, nesterov } => {
                        let mu = momentum as f64;
                        let mut d = g[i] + wd * p[i];
                        if mu != 0.0 {
                            b[i] = if t == 1 { d } else { mu * b[i] + d };
                            d = if nesterov { d + mu * b[i] } else { b[i] };
                        }
                        p[i] -= lr * d;
                    }
                    OptimizerKind::Adam { beta1, beta2, eps }
                    | OptimizerKind::AdamW { beta1, beta2, eps } => {
                        let (b1, b2, eps) = (beta1 as f64, beta2 as f64, eps as f64);
                        let mut d = g[i];
                        if matches!(kind, OptimizerKind::AdamW { .. }) {
                            p[i] -= lr * wd * p[i];
                        } else {
                            d += wd * p[i];
                        }
                        m[i] = b1 * m[i] + (1.0 - b1) * d;
                        v[i] = b2 * v[i] + (1.0 - b2) * d * d;
                        let mhat = m[i] / (1.0 - b1.powi(t as i32));
                        let vhat = v[i] / (1.0 - b2.powi(t as i32));
                        p[i] -= lr * mhat / (vhat.sqrt() + eps);
                    }
                }
            }
        }
    }

    /// Runs `steps` updates on two parameter tensors with gradient `grad(p)` applied per tensor.
    fn ours(
        opt: &mut Optimizer,
        lr: f32,
        p: &mut [Vec<f32>],
        grad: &dyn Fn(&[f64]) -> Vec<f64>,
        steps: usize,
    ) {
        for _ in 0..steps {
            let gs: Vec<Vec<f32>> = p
                .iter()
                .map(|p| {
                    grad(&p.iter().map(|&x| x as f64).collect::<Vec<_>>()).iter().map(|&g| g as f32).collect()
                })
                .collect();
            let mut ps: Vec<&mut [f32]> = p.iter_mut().map(|p| p.as_mut_slice()).collect();
            let gr: Vec<&[f32]> = gs.iter().map(|g| g.as_slice()).collect();
            opt.step(lr, &mut ps, &gr).unwrap();
        }
    }

    /// Gradient of sum(p^2 + c p): a loss whose gradient depends on the parameters.
    fn quad(p: &[f64]) -> Vec<f64> {
        p.iter().enumerate().map(|(i, &x)| 2.0 * x + 0.3 - 0.2 * i as f64).collect()
    }

    fn compare(kind: OptimizerKind, wd: f32, lr: f32) {
        let init = [vec![1.0f32, -2.0, 0.5, 0.0], vec![3.0f32, -0.25]];
        let mut p = init.to_vec();
        let mut opt = Optimizer::new(kind, wd);
        ours(&mut opt, lr, &mut p, &quad, 3);
        assert_eq!(opt.steps(), 3);
        for (mine, init) in p.iter().zip(&init) {
            let mut want: Vec<f64> = init.iter().map(|&x| x as f64).collect();
            reference(kind, wd as f64, lr as f64, &mut want, &quad, 3);
            for (a, b) in mine.iter().zip(&want) {
                assert!(
                    (*a as f64 - b).abs() < 1e-5 * (1.0 + b.abs()),
                    "{kind:?} wd {wd}: {mine:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn three_steps_match_the_reference_equations() {
        for wd in [0.0, 0.1] {
            compare(OptimizerKind::Sgd { momentum: 0.0, nesterov: false }, wd, 0.1);
            compare(OptimizerKind::Sgd { momentum: 0.9, nesterov: false }, wd, 0.1);
            compare(OptimizerKind::Sgd { momentum: 0.9, nesterov: true }, wd, 0.1);
            compare(OptimizerKind::adam(), wd, 0.01);
            compare(OptimizerKind::Adam { beta1: 0.5, beta2: 0.7, eps: 1e-3 }, wd, 0.1);
            compare(OptimizerKind::adamw(), wd, 0.01);
            compare(OptimizerKind::AdamW { beta1: 0.5, beta2: 0.7, eps: 1e-3 }, wd, 0.1);
        }
    }

    fn run_const_grad(kind: OptimizerKind, wd: f32, lr: f32, g: f32) -> Vec<f32> {
        let mut opt = Optimizer::new(kind, wd);
        let mut p = vec![1.0f32];
        (0..3)
            .map(|_| {
                opt.step(lr, &mut [p.as_mut_slice()], &[&[g]]).unwrap();
                p[0]
            })
            .collect()
    }

    fn close(a: &[f32], b: &[f32]) {
        assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6), "{a:?} vs {b:?}");
    }

    #[test]
    fn hand_computed_literals() {
        // p0 = 1, constant gradient 0.5, lr 0.1, momentum 0.9:
        // b = 0.5, 0.95, 1.355; p = 0.95, 0.855, 0.7195.
        close(
            &run_const_grad(OptimizerKind::Sgd { momentum: 0.9, nesterov: false }, 0.0, 0.1, 0.5),
            &[0.95, 0.855, 0.7195],
        );
        // Nesterov: d = g + 0.9 b = 0.95, 1.355, 1.7195; p = 0.905, 0.7695, 0.59755.
        close(
            &run_const_grad(OptimizerKind::Sgd { momentum: 0.9, nesterov: true }, 0.0, 0.1, 0.5),
            &[0.905, 0.7695, 0.59755],
        );
        // Plain SGD with L2 0.1: p <- p - 0.1 (0.5 + 0.1 p) = 0.99 p - 0.05.
        close(
            &run_const_grad(OptimizerKind::Sgd { momentum: 0.0, nesterov: false }, 0.1, 0.1, 0.5),
            &[0.94, 0.8806, 0.821794],
        );
        // Adam with a constant gradient: the bias-corrected moments are exactly g and g^2,
        // so each step moves by lr * g / (|g| + eps) = 0.1.
        close(&run_const_grad(OptimizerKind::adam(), 0.0, 0.1, 0.5), &[0.9, 0.8, 0.7]);
        // AdamW, decay 0.1: p <- 0.99 p - 0.1 = 0.89, 0.7811, 0.673289.
        close(&run_const_grad(OptimizerKind::adamw(), 0.1, 0.1, 0.5), &[0.89, 0.7811, 0.673289]);
    }

    #[test]
    fn weight_decay_behaviour() {
        // With a zero gradient, SGD's L2 term shrinks p geometrically: p (1 - lr wd)^t.
        close(
            &run_const_grad(OptimizerKind::Sgd { momentum: 0.0, nesterov: false }, 0.5, 0.1, 0.0),
            &[0.95, 0.9025, 0.857375],
        );
        // AdamW's decay is decoupled: identical shrinkage with a zero gradient (m = v = 0).
        close(&run_const_grad(OptimizerKind::adamw(), 0.5, 0.1, 0.0), &[0.95, 0.9025, 0.857375]);
        // Adam's L2 decay goes through the normalised update: with g = 0 the effective
        // gradient is wd p > 0, so each step moves by about lr regardless of wd's size.
        let a = run_const_grad(OptimizerKind::adam(), 0.5, 0.1, 0.0);
        let b = run_const_grad(OptimizerKind::adam(), 0.01, 0.1, 0.0);
        close(&[a[0]], &[0.9]);
        close(&[b[0]], &[0.9]);
    }

    #[test]
    fn checkpoint_state_round_trips() {
        let kind = OptimizerKind::adam();
        let mut a = vec![vec![1.0f32, 2.0], vec![-1.0]];
        let mut opt = Optimizer::new(kind, 0.01);
        ours(&mut opt, 0.01, &mut a, &quad, 2);
        let json = serde_json::to_string(opt.state()).unwrap();
        let mut resumed = Optimizer::new(kind, 0.01);
        resumed.restore(serde_json::from_str(&json).unwrap()).unwrap();
        assert_eq!(resumed.steps(), 2);
        let mut b = a.clone();
        ours(&mut opt, 0.01, &mut a, &quad, 1);
        ours(&mut resumed, 0.01, &mut b, &quad, 1);
        assert_eq!(a, b);
        // A fresh optimiser (step 0, no moments) would not give the same update.
        let mut c = b.clone();
        ours(&mut Optimizer::new(kind, 0.01), 0.01, &mut c, &quad, 1);
        ours(&mut resumed, 0.01, &mut b, &quad, 1);
        assert_ne!(b, c);
    }

    #[test]
    fn errors() {
        let mut opt = Optimizer::new(OptimizerKind::Sgd { momentum: 0.9, nesterov: false }, 0.0);
        let mut p = vec![1.0f32, 2.0];
        let e = opt.step(0.1, &mut [p.as_mut_slice()], &[&[1.0]]).unwrap_err().to_string();
        assert!(e.contains("2 values") && e.contains("gradient 1"), "{e}");
        assert!(opt.step(0.1, &mut [p.as_mut_slice()], &[]).is_err());
        opt.step(0.1, &mut [p.as_mut_slice()], &[&[1.0, 1.0]]).unwrap();
        let mut q = vec![0.0f32; 3];
        let e = opt.step(0.1, &mut [q.as_mut_slice()], &[&[1.0; 3]]).unwrap_err().to_string();
        assert!(e.contains("reset()"), "{e}");
        opt.reset();
        opt.step(0.1, &mut [q.as_mut_slice()], &[&[1.0; 3]]).unwrap();
        let mut bad = Optimizer::new(OptimizerKind::Sgd { momentum: 0.0, nesterov: true }, 0.0);
        assert!(bad.step(0.1, &mut [q.as_mut_slice()], &[&[1.0; 3]]).is_err());
        let mut bad = Optimizer::new(OptimizerKind::Adam { beta1: 1.0, beta2: 0.9, eps: 1e-8 }, 0.0);
        assert!(bad.step(0.1, &mut [q.as_mut_slice()], &[&[1.0; 3]]).is_err());
        let sgd_state = OptimizerState { step: 1, first: vec![vec![1.0]], second: vec![vec![1.0]] };
        assert!(
            Optimizer::new(OptimizerKind::Sgd { momentum: 0.9, nesterov: false }, 0.0)
                .restore(sgd_state)
                .is_err()
        );
    }
}
