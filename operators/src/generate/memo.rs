//! The memo cache: generations persisted in an embedded `redb` file, keyed by everything that
//! decides the output — the model and its weights (the generator's fingerprint), the stage and
//! its prompt-template version, the sampling parameters (seed included) and the prompt text.
//! Reruns and incremental rebuilds reuse it; changing a template's version or the model misses
//! exactly the entries they affect. Only successful generations are stored: failures are retried
//! on the next run.
//!
//! redb locks its file per process: give each process of a cluster its own file (the pipeline
//! names it `memo-p{process}.redb`).

use super::{Completion, GenRequest};
use redb::TableDefinition;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("generations");
/// Embeddings (little-endian f32s), keyed by (embedding model fingerprint, text).
const VECTORS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("embeddings");

pub struct MemoCache {
    db: redb::Database,
    path: PathBuf,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

/// A memo key: 16 bytes of xxh3-128 over the length-prefixed parts.
pub type MemoKey = [u8; 16];

pub fn key(fingerprint: &str, stage: &str, req: &GenRequest) -> MemoKey {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for part in [fingerprint, stage, &req.params.key(), &req.prompt.key()] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.digest128().to_le_bytes()
}

/// The memo key of a text's embedding under a model.
pub fn vector_key(fingerprint: &str, text: &str) -> MemoKey {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for part in [fingerprint, text] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.digest128().to_le_bytes()
}

/// Why a cache file did not open.
enum Opened {
    Corrupt(String),
    Other(String),
}

impl MemoCache {
    /// Opens (or creates) the cache at `path`. A file redb cannot read (truncated, corrupt: redb
    /// may even panic on it) is moved aside to `<path>.corrupt-<unix secs>` with a warning and a
    /// new cache is started: the cache only saves model calls, so losing it costs time, never
    /// data. A file another process has open is an error, not corruption.
    pub fn open(path: &Path) -> Result<MemoCache, String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        match Self::open_db(path) {
            Ok(db) => Ok(MemoCache::with(db, path)),
            Err(Opened::Other(e)) => Err(format!("memo cache {}: {e}", path.display())),
            Err(Opened::Corrupt(why)) => {
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let mut aside = path.as_os_str().to_os_string();
                aside.push(format!(".corrupt-{secs}"));
                let aside = std::path::PathBuf::from(aside);
                std::fs::rename(path, &aside).map_err(|e| format!("moving aside {}: {e}", path.display()))?;
                eprintln!(
                    "warning: memo cache {} is unreadable ({why}); moved to {} and a new one started (its model \
                     calls are made again)",
                    path.display(),
                    aside.display()
                );
                match Self::open_db(path) {
                    Ok(db) => Ok(MemoCache::with(db, path)),
                    Err(Opened::Other(e) | Opened::Corrupt(e)) => {
                        Err(format!("memo cache {}: {e}", path.display()))
                    }
                }
            }
        }
    }

    fn with(db: redb::Database, path: &Path) -> MemoCache {
        MemoCache { db, path: path.to_path_buf(), hits: AtomicU64::new(0), misses: AtomicU64::new(0) }
    }

    fn open_db(path: &Path) -> Result<redb::Database, Opened> {
        let opened = std::panic::catch_unwind(|| -> Result<redb::Database, redb::Error> {
            let db = redb::Database::create(path)?;
            let tx = db.begin_write()?;
            tx.open_table(TABLE)?;
            tx.open_table(VECTORS)?;
            tx.commit()?;
            Ok(db)
        });
        match opened {
            Ok(Ok(db)) => Ok(db),
            Err(panic) => Err(Opened::Corrupt(crate::fault::panic_message(panic.as_ref()))),
            Ok(Err(redb::Error::DatabaseAlreadyOpen)) => {
                Err(Opened::Other("open in another process (give each process its own memo_path)".into()))
            }
            Ok(Err(redb::Error::Io(e)))
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
                ) =>
            {
                Err(Opened::Other(e.to_string()))
            }
            Ok(Err(e)) => Err(Opened::Corrupt(e.to_string())),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Looks up many keys in one read transaction; counts hits and misses.
    pub fn get_many(&self, keys: &[MemoKey]) -> Vec<Option<Completion>> {
        let found: Vec<Option<Completion>> =
            (|| -> Result<Vec<Option<Completion>>, Box<dyn std::error::Error>> {
                let tx = self.db.begin_read()?;
                let table = tx.open_table(TABLE)?;
                let mut out = Vec::with_capacity(keys.len());
                for k in keys {
                    out.push(match table.get(&k[..])? {
                        Some(v) => serde_json::from_slice(v.value()).ok(),
                        None => None,
                    });
                }
                Ok(out)
            })()
            .unwrap_or_else(|e| {
                tracing::warn!("memo cache {}: read failed ({e}); treating as misses", self.path.display());
                vec![None; keys.len()]
            });
        let hits = found.iter().filter(|f| f.is_some()).count() as u64;
        self.hits.fetch_add(hits, Ordering::Relaxed);
        self.misses.fetch_add(keys.len() as u64 - hits, Ordering::Relaxed);
        found
    }

    /// Stores many completions in one durable write transaction.
    pub fn put_many(&self, entries: &[(MemoKey, Completion)]) -> Result<(), String> {
        if entries.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write().map_err(|e| e.to_string())?;
        {
            let mut table = tx.open_table(TABLE).map_err(|e| e.to_string())?;
            for (k, c) in entries {
                let v = serde_json::to_vec(c).map_err(|e| e.to_string())?;
                table.insert(&k[..], v.as_slice()).map_err(|e| e.to_string())?;
            }
        }
        tx.commit().map_err(|e| format!("memo cache {}: {e}", self.path.display()))
    }

    /// Embeddings for many keys (see [`vector_key`]) in one read transaction.
    pub fn get_vectors(&self, keys: &[MemoKey]) -> Vec<Option<Vec<f32>>> {
        (|| -> Result<Vec<Option<Vec<f32>>>, Box<dyn std::error::Error>> {
            let tx = self.db.begin_read()?;
            let table = tx.open_table(VECTORS)?;
            let mut out = Vec::with_capacity(keys.len());
            for k in keys {
                out.push(table.get(&k[..])?.map(|v| {
                    v.value().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
                }));
            }
            Ok(out)
        })()
        .unwrap_or_else(|e| {
            tracing::warn!("memo cache {}: read failed ({e}); treating as misses", self.path.display());
            vec![None; keys.len()]
        })
    }

    pub fn put_vectors(&self, entries: &[(MemoKey, &[f32])]) -> Result<(), String> {
        if entries.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write().map_err(|e| e.to_string())?;
        {
            let mut table = tx.open_table(VECTORS).map_err(|e| e.to_string())?;
            for (k, v) in entries {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                table.insert(&k[..], bytes.as_slice()).map_err(|e| e.to_string())?;
            }
        }
        tx.commit().map_err(|e| format!("memo cache {}: {e}", self.path.display()))
    }

    pub fn len(&self) -> usize {
        use redb::ReadableTableMetadata;
        self.db
            .begin_read()
            .ok()
            .and_then(|tx| tx.open_table(TABLE).ok())
            .and_then(|t| t.len().ok())
            .unwrap_or(0) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{FinishReason, Prompt, SamplingParams};

    fn req(p: &str, seed: u64) -> GenRequest {
        GenRequest::new(Prompt::Text(p.into()), SamplingParams { seed, ..SamplingParams::default() })
    }

    #[test]
    fn keys_separate_model_stage_params_and_prompt() {
        let base = key("m1", "reverse@1", &req("a", 1));
        assert_eq!(base, key("m1", "reverse@1", &req("a", 1)));
        for other in [
            key("m2", "reverse@1", &req("a", 1)),
            key("m1", "reverse@2", &req("a", 1)),
            key("m1", "reverse@1", &req("a", 2)),
            key("m1", "reverse@1", &req("b", 1)),
        ] {
            assert_ne!(base, other);
        }
    }

    fn completion(text: &str, completion_tokens: usize) -> Completion {
        Completion {
            text: text.into(),
            prompt_tokens: 5,
            completion_tokens,
            finish: FinishReason::Stop,
            truncated_prompt_tokens: 0,
            cached_prompt_tokens: 0,
        }
    }

    #[test]
    fn survives_reopen() {
        let dir = std::env::temp_dir().join(format!("xinst-memo-{}", std::process::id()));
        let path = dir.join("memo.redb");
        let c = completion("Write a poem.", 4);
        let k = key("m", "s", &req("x", 0));
        {
            let memo = MemoCache::open(&path).unwrap();
            assert_eq!(memo.get_many(&[k]), vec![None]);
            memo.put_many(&[(k, c.clone())]).unwrap();
        }
        let memo = MemoCache::open(&path).unwrap();
        assert_eq!(memo.get_many(&[k]), vec![Some(c)]);
        assert_eq!((memo.hits.load(Ordering::Relaxed), memo.misses.load(Ordering::Relaxed)), (1, 0));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_truncated_or_garbage_file_is_moved_aside_and_a_fresh_cache_started() {
        let dir = std::env::temp_dir().join(format!("xinst-memo-bad-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("memo.redb");
        let c = completion("Explain.", 2);
        let entries: Vec<(MemoKey, Completion)> =
            (0..200u64).map(|i| (key("m", "s", &req(&format!("p{i}"), i)), c.clone())).collect();
        MemoCache::open(&path).unwrap().put_many(&entries).unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        for (i, broken) in [
            std::fs::read(&path).unwrap()[..(len / 3) as usize].to_vec(),
            b"not a redb file at all, just text".repeat(100),
        ]
        .into_iter()
        .enumerate()
        {
            std::fs::write(&path, &broken).unwrap();
            let memo = MemoCache::open(&path).unwrap_or_else(|e| panic!("case {i}: {e}"));
            assert_eq!(memo.get_many(&[entries[0].0]), vec![None], "case {i}: a fresh cache");
            memo.put_many(&entries[..1]).unwrap();
            drop(memo);
            let aside: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
                .collect();
            assert!(!aside.is_empty(), "case {i}: the old file is kept aside");
            for a in aside {
                std::fs::remove_file(a.path()).unwrap();
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
