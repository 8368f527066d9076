//! The X-Instruction method's stages: [`reverse`] (reverse instruction), [`cross_check`]
//! (instruction is English, response in the document's language, translation requests
//! flagged), [`evaluate`] (good / flawed / bad), [`refine`] (bounded refinement loop), on
//! top of [`crate::generate`]; their prompts and prompt hygiene are in [`prompt`], the
//! instruction checks in [`sanity`], the evaluator's verdict parser in [`verdict`], the
//! judge's own discrimination check in [`self_check`],
//! the shared models and per-document helpers in [`models`].

pub mod cross_check;
pub mod evaluate;
pub mod models;
pub mod prompt;
pub mod refine;
pub mod reverse;
pub mod sanity;
pub mod self_check;
pub mod verdict;

pub use cross_check::{CrossCheck, CrossCheckConfig, TranslatePolicy};
pub use evaluate::{Evaluate, EvaluateConfig};
pub use models::StageModels;
pub use refine::{Refine, RefineConfig, RefineMode, RefineStages};
pub use reverse::{split_sampled, ReverseConfig, ReverseInstruction};
