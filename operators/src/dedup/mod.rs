//! Exact and near-duplicate removal. [`minhash`]: shingles, MinHash signatures, LSH band keys
//! and Jaccard estimates; [`clusters`]: the differential computation from signature records
//! to cluster memberships (exact groups, LSH candidates, verification, connected components);
//! [`prior`]: a restarted run's stored records, loaded only where this run's records meet
//! them; [`operator`]: the `dedup` operator on the document stream.

pub mod clusters;
pub mod minhash;
pub mod operator;
pub mod prior;

pub use clusters::{clusters, ClusterParams, DocKey, Membership, SigRecord};
pub use minhash::exact_hash;
pub use operator::{sig_record, Dedup, DedupConfig, DedupOutput, Prior};
pub use prior::PriorLoad;
