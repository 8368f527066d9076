//! Diversification, the paper's last step: [`embed`] the English instructions, cluster them
//! per language with [`kmeans`], and [`sample`] round-robin across clusters up to a quota.

pub mod embed;
pub mod encoder;
pub mod kmeans;
pub mod live;
pub mod operator;
pub mod sample;

pub use embed::{EmbedConfig, Embedder, Engine};
pub use kmeans::{kmeans, KMeans, KMeansConfig};
pub use live::{Centroids, Changes, LangSelection, Member, Point};
pub use operator::EmbedPairs;
pub use sample::{select, Candidate, Diversity, SampleConfig};
