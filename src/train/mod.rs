//! Training: the trainer (training graph + optimiser + masks and hooks), the fit loop with
//! checkpoints, evaluation, optimisers and learning-rate schedules.

pub mod eval;
pub mod fit;
pub mod optim;
pub mod schedule;
pub mod trainer;

pub use eval::{Classifier, EvalReport, evaluate};
pub use fit::{EpochLog, Event, FitConfig, fit, load_checkpoint, save_checkpoint};
pub use trainer::{StepResult, TrainHook, Trainer};
