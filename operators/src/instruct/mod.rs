//! The X-Instruction method's stages: [`reverse`] (reverse instruction), [`cross_check`]
//! (instruction is English, response in the document's language, translation requests
//! flagged), [`evaluate`] (good / flawed / bad), [`refine`] (bounded refinement loop), on
//! top of [`crate::generate`]; their prompts, prompt hygiene and parsers are in [`prompt`],
//! the shared models and per-document helpers in [`models`].

pub mod cross_check;
pub mod evaluate;
pub mod models;
pub mod prompt;
pub mod refine;
pub mod reverse;

pub use cross_check::{CrossCheck, CrossCheckConfig, TranslatePolicy};
pub use evaluate::{Evaluate, EvaluateConfig};
pub use models::StageModels;
pub use refine::{Refine, RefineConfig, RefineMode, RefineStages};
pub use reverse::{ReverseConfig, ReverseInstruction};
