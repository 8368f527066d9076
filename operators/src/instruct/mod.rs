//! The X-Instruction method's own pieces: prompt templates, prompt hygiene, instruction
//! cleaning and evaluator parsing ([`prompt`]). The stage operators (reverse_instruction,
//! evaluate, refine) build on these and on [`crate::generate`].

pub mod prompt;
