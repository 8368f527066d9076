//! xinstruct's operator plugin set.
//!
//! Every operator has the same shape: a serde `…Config` (with `deny_unknown_fields` and named
//! defaults), an extension trait on a differential collection with a plain and a `_named`
//! method, per-operator [`stats::OpStats`], and a rejects collection whose records carry
//! their origin and reason.

pub(crate) mod chars;
pub mod dedup;
pub mod diversity;
pub mod doc;
pub mod fault;
pub mod filter;
#[doc(hidden)]
pub mod fuzzing;
pub mod generate;
pub mod instruct;
pub mod lang_id;
pub mod normalize;
pub mod quality;
pub mod source;
pub mod stats;

pub use doc::{Doc, Origin, Pair, Reject};
pub use stats::{OpStats, StatsRegistry};

/// The timestamp of every collection: the ingestion epoch (one epoch = one batch of new shards).
pub type Epoch = u64;
