//! Learning-rate schedules: constant, step decay and cosine annealing, each with an optional
//! linear warm-up, and a small text syntax for the command line.
//!
//! Steps are optimiser steps (batches), counted from 0. Spec syntax (comma-separated parts,
//! at most one warm-up and one main schedule; warm-up alone means constant afterwards):
//!
//! - `constant`
//! - `step:EVERY:GAMMA`: multiply by `GAMMA` every `EVERY` (e.g. `step:30e:0.1`)
//! - `cosine` or `cosine:MIN_LR`: cosine from the base rate down to `MIN_LR` (default 0) at
//!   the end of training
//! - `warmup:N`: linear warm-up over `N` (e.g. `warmup:500,cosine`)
//!
//! A count is in steps (`500`) or, with an `e` suffix, in epochs (`30e`, `0.5e`), converted
//! with the number of steps per epoch when the spec is resolved.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The main schedule, applied after the warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// `base * gamma^(step / every)` (integer division, counted from step 0 as PyTorch's StepLR;
    /// the warm-up does not shift the decay points).
    Step {
        /// Steps between decays (at least 1).
        every: usize,
        /// Factor applied at each decay.
        gamma: f32,
    },
    /// `min + (base - min) (1 + cos(pi progress)) / 2`, with progress going from 0 at the end of
    /// the warm-up to 1 at step `total`, and `min_lr` afterwards.
    Cosine {
        /// Total steps of training, warm-up included.
        total: usize,
        /// Rate at the end.
        min_lr: f32,
    },
}

/// A learning rate as a function of the step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// Peak rate.
    pub base_lr: f32,
    /// Shape after the warm-up.
    pub schedule: Schedule,
    /// Warm-up steps: the rate rises linearly as `base * step / warmup` (0 at step 0).
    pub warmup: usize,
}

impl LrSchedule {
    /// The constant rate `base_lr`.
    pub fn constant(base_lr: f32) -> LrSchedule {
        LrSchedule { base_lr, schedule: Schedule::Constant, warmup: 0 }
    }

    /// The rate for the update at `step` (0-based).
    pub fn lr_at(&self, step: usize) -> f32 {
        let base = self.base_lr as f64;
        if step < self.warmup {
            return (base * step as f64 / self.warmup as f64) as f32;
        }
        let lr = match self.schedule {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => base * (gamma as f64).powi((step / every.max(1)) as i32),
            Schedule::Cosine { total, min_lr } => {
                let min = min_lr as f64;
                if step >= total {
                    min
                } else {
                    let progress = (step - self.warmup) as f64 / (total - self.warmup) as f64;
                    min + (base - min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
                }
            }
        };
        lr as f32
    }

    /// Parses a spec (see the module docs); resolve it once the run's length is known.
    pub fn parse(spec: &str) -> Result<ScheduleSpec> {
        ScheduleSpec::parse(spec)
    }
}

/// A count of steps or epochs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Count {
    /// Optimiser steps.
    Steps(usize),
    /// Epochs (may be fractional).
    Epochs(f64),
}

impl Count {
    fn parse(s: &str) -> Result<Count> {
        if let Some(e) = s.strip_suffix('e') {
            let v: f64 = e.parse().with_context(|| format!("\"{s}\" is not a number of epochs"))?;
            if !(v.is_finite() && v >= 0.0) {
                bail!("epoch count must be >= 0, got {s}");
            }
            Ok(Count::Epochs(v))
        } else {
            Ok(Count::Steps(
                s.parse().with_context(|| format!("\"{s}\" is not a step count (or epochs like 30e)"))?,
            ))
        }
    }

    /// The count in steps.
    pub fn steps(self, steps_per_epoch: usize) -> usize {
        match self {
            Count::Steps(n) => n,
            Count::Epochs(e) => (e * steps_per_epoch as f64).round() as usize,
        }
    }
}

/// The main part of a parsed spec.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MainSpec {
    /// `constant`.
    Constant,
    /// `step:EVERY:GAMMA`.
    Step {
        /// Interval between decays.
        every: Count,
        /// Decay factor.
        gamma: f32,
    },
    /// `cosine[:MIN_LR]`.
    Cosine {
        /// Final rate.
        min_lr: f32,
    },
}

/// A parsed schedule spec whose counts are not yet resolved to steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScheduleSpec {
    /// Warm-up length.
    pub warmup: Count,
    /// Main schedule.
    pub main: MainSpec,
}

const FORMS: &str = "constant, step:EVERY:GAMMA, cosine[:MIN_LR], warmup:N (comma-separated, counts in \
                     steps or with an e suffix in epochs)";

impl ScheduleSpec {
    /// Parses `"warmup:500,cosine"`, `"step:30e:0.1"`, ...
    pub fn parse(spec: &str) -> Result<ScheduleSpec> {
        let (mut warmup, mut main) = (None, None);
        for part in spec.split(',').map(str::trim) {
            let fields: Vec<&str> = part.split(':').map(str::trim).collect();
            let float = |s: &str, what: &str| -> Result<f32> {
                let v: f32 =
                    s.parse().with_context(|| format!("{what} \"{s}\" in \"{part}\" is not a number"))?;
                if !v.is_finite() || v < 0.0 {
                    bail!("{what} must be a finite number >= 0, got {s} in \"{part}\"");
                }
                Ok(v)
            };
            let parsed = match fields.as_slice() {
                ["warmup", n] => {
                    if warmup.replace(Count::parse(n)?).is_some() {
                        bail!("schedule \"{spec}\" has two warm-ups");
                    }
                    continue;
                }
                ["constant"] => MainSpec::Constant,
                ["step", every, gamma] => {
                    let every = Count::parse(every)?;
                    if matches!(every, Count::Steps(0)) || matches!(every, Count::Epochs(e) if e == 0.0) {
                        bail!("step schedule needs an interval > 0, got \"{part}\"");
                    }
                    MainSpec::Step { every, gamma: float(gamma, "decay factor")? }
                }
                ["cosine"] => MainSpec::Cosine { min_lr: 0.0 },
                ["cosine", min] => MainSpec::Cosine { min_lr: float(min, "minimum rate")? },
                _ => bail!("unknown schedule part \"{part}\" in \"{spec}\"; accepted: {FORMS}"),
            };
            if main.replace(parsed).is_some() {
                bail!("schedule \"{spec}\" has more than one main schedule; accepted: {FORMS}");
            }
        }
        Ok(ScheduleSpec {
            warmup: warmup.unwrap_or(Count::Steps(0)),
            main: main.unwrap_or(MainSpec::Constant),
        })
    }

    /// Resolves counts to steps for a run of `total_steps` with `steps_per_epoch`.
    pub fn resolve(&self, base_lr: f32, total_steps: usize, steps_per_epoch: usize) -> Result<LrSchedule> {
        if !(base_lr.is_finite() && base_lr >= 0.0) {
            bail!("the learning rate must be a finite number >= 0, got {base_lr}");
        }
        let warmup = self.warmup.steps(steps_per_epoch);
        let schedule = match self.main {
            MainSpec::Constant => Schedule::Constant,
            MainSpec::Step { every, gamma } => {
                let every = every.steps(steps_per_epoch);
                if every == 0 {
                    bail!("step decay interval {every:?} is 0 steps with {steps_per_epoch} steps per epoch");
                }
                Schedule::Step { every, gamma }
            }
            MainSpec::Cosine { min_lr } => {
                if warmup >= total_steps {
                    bail!("cosine schedule: warm-up of {warmup} steps leaves nothing of {total_steps} steps");
                }
                Schedule::Cosine { total: total_steps, min_lr }
            }
        };
        Ok(LrSchedule { base_lr, schedule, warmup })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f64) {
        assert!((a as f64 - b).abs() < 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
    }

    #[test]
    fn schedules_at_chosen_steps() {
        let c = LrSchedule::constant(0.1);
        close(c.lr_at(0), 0.1);
        close(c.lr_at(10_000), 0.1);

        let s = LrSchedule { base_lr: 0.1, schedule: Schedule::Step { every: 30, gamma: 0.1 }, warmup: 0 };
        for (step, want) in [(0, 0.1), (29, 0.1), (30, 0.01), (59, 0.01), (60, 0.001), (95, 0.0001)] {
            close(s.lr_at(step), want);
        }

        // Cosine over 100 steps to 0: half way 0.05, a quarter 0.05 (1 + cos(pi/4)).
        let cos =
            LrSchedule { base_lr: 0.1, schedule: Schedule::Cosine { total: 100, min_lr: 0.0 }, warmup: 0 };
        close(cos.lr_at(0), 0.1);
        close(cos.lr_at(50), 0.05);
        close(cos.lr_at(25), 0.05 * (1.0 + 0.5f64.sqrt()));
        close(cos.lr_at(100), 0.0);
        close(cos.lr_at(1000), 0.0);

        // Warm-up 10 then cosine 10 -> 110 down to 0.001.
        let w =
            LrSchedule { base_lr: 0.1, schedule: Schedule::Cosine { total: 110, min_lr: 0.001 }, warmup: 10 };
        close(w.lr_at(0), 0.0);
        close(w.lr_at(1), 0.01);
        close(w.lr_at(5), 0.05);
        close(w.lr_at(10), 0.1);
        close(w.lr_at(60), 0.001 + 0.099 * 0.5);
        close(w.lr_at(85), 0.001 + 0.099 * 0.5 * (1.0 + (0.75 * std::f64::consts::PI).cos()));
        close(w.lr_at(110), 0.001);
        // Warm-up before step decay: decay points are absolute steps.
        let ws = LrSchedule { base_lr: 1.0, schedule: Schedule::Step { every: 4, gamma: 0.5 }, warmup: 2 };
        let got: Vec<f32> = (0..9).map(|i| ws.lr_at(i)).collect();
        assert_eq!(got, [0.0, 0.5, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25]);
    }

    #[test]
    fn parse_and_resolve() {
        let r = |s: &str| LrSchedule::parse(s).unwrap().resolve(0.1, 1000, 100).unwrap();
        assert_eq!(r("constant"), LrSchedule::constant(0.1));
        assert_eq!(r("step:30:0.1").schedule, Schedule::Step { every: 30, gamma: 0.1 });
        assert_eq!(r("step:3e:0.5").schedule, Schedule::Step { every: 300, gamma: 0.5 });
        assert_eq!(
            r("cosine"),
            LrSchedule { base_lr: 0.1, schedule: Schedule::Cosine { total: 1000, min_lr: 0.0 }, warmup: 0 }
        );
        let w = r("warmup:500,cosine");
        assert_eq!((w.warmup, w.schedule), (500, Schedule::Cosine { total: 1000, min_lr: 0.0 }));
        let w = r(" cosine:0.001 , warmup:0.5e ");
        assert_eq!((w.warmup, w.schedule), (50, Schedule::Cosine { total: 1000, min_lr: 0.001 }));
        assert_eq!(r("warmup:20"), LrSchedule { base_lr: 0.1, schedule: Schedule::Constant, warmup: 20 });

        // each bad spec is refused with a message that says what is wrong with it
        for (bad, says) in [
            ("", "unknown schedule part \"\" in \"\""),
            ("linear", "unknown schedule part \"linear\""),
            ("step:0:0.1", "step schedule needs an interval > 0, got \"step:0:0.1\""),
            ("step:30", "unknown schedule part \"step:30\""),
            ("step:x:0.1", "\"x\" is not a step count"),
            ("cosine:-1", "minimum rate must be a finite number >= 0, got -1"),
            ("warmup:1,warmup:2", "has two warm-ups"),
            ("cosine,constant", "more than one main schedule"),
        ] {
            let e = format!("{:#}", LrSchedule::parse(bad).unwrap_err());
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        let e = format!("{:#}", LrSchedule::parse("linear").unwrap_err());
        assert!(e.contains("linear") && e.contains("cosine"), "{e}");
        assert!(LrSchedule::parse("warmup:2000,cosine").unwrap().resolve(0.1, 1000, 100).is_err());
        assert!(LrSchedule::parse("step:0.001e:0.1").unwrap().resolve(0.1, 1000, 100).is_err());
    }
}
