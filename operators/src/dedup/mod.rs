//! Near-duplicate detection. [`minhash`]: shingles, MinHash signatures, LSH band keys and
//! Jaccard estimates, checked against brute-force Jaccard. The incremental `dedup` operator
//! (buckets → candidate pairs → connected components in differential, with retraction) builds
//! on it.

pub mod minhash;
