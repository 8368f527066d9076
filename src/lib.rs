//! xinstruct: cross-lingual instruction-tuning data from web crawls (X-Instruction), as a
//! streaming dataflow on timely/differential.

pub mod config;
pub mod dedup;
pub mod generation;
pub mod lock;
pub mod manifest;
pub mod models;
pub mod pipeline;
pub mod plan;
pub mod report;
pub mod sink;
pub mod sql;
pub mod store;

pub use xinstruct_operators as operators;
pub mod diversify;
pub mod export;
pub mod sample;
pub mod seed;
pub mod serve;
pub mod settings;
pub mod summary;
