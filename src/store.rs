//! Where inputs and outputs live: local paths (with globs) or `s3://bucket/prefix`, through
//! object_store. S3 follows the AWS environment conventions (`AWS_ENDPOINT_URL`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, …); an `http://` endpoint
//! (an S3-compatible server on loopback) turns on `allow_http`.

use anyhow::{bail, Context, Result};
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::runtime::Runtime;
use xinstruct_operators::source::{Format, OpenedShard, ShardOpener, ShardTask};
use xxhash_rust::xxh3::Xxh3;

/// A location: an object store, a key prefix inside it and how to name objects to users.
#[derive(Clone)]
pub struct Store {
    pub store: Arc<dyn ObjectStore>,
    /// Key prefix inside the store (empty for a local root).
    pub prefix: ObjPath,
    /// The local directory behind a local store.
    pub local_root: Option<PathBuf>,
    /// `s3://bucket` or the local root, for URIs shown to users and kept in the manifest.
    pub display_root: String,
    /// Only keys matching this glob (relative to the prefix) are shards.
    pub pattern: Option<glob::Pattern>,
}

impl Store {
    /// Parses a URI: `s3://bucket/prefix[/glob]`, `file:///dir`, or a local path or glob.
    pub fn open(uri: &str, create_local: bool) -> Result<Store> {
        if let Some(rest) = uri.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("{uri}: no bucket name");
            }
            let (prefix, pattern) = split_glob(key.trim_matches('/'));
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            let endpoint = std::env::var("AWS_ENDPOINT_URL").or_else(|_| std::env::var("AWS_ENDPOINT")).ok();
            if let Some(ep) = &endpoint {
                builder = builder.with_endpoint(ep);
                if ep.starts_with("http://") {
                    builder = builder.with_allow_http(true);
                }
            }
            if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
                builder = builder.with_region("us-east-1");
            }
            // Ride out a server that is away for a while (a restart, a failover): object_store's
            // default gives up after 10 quick retries, about 3 s when connections are refused.
            let retry = object_store::RetryConfig {
                backoff: object_store::BackoffConfig {
                    init_backoff: std::time::Duration::from_millis(200),
                    max_backoff: std::time::Duration::from_secs(10),
                    base: 2.0,
                },
                max_retries: 20,
                retry_timeout: std::time::Duration::from_secs(120),
            };
            let store =
                builder.with_retry(retry).build().with_context(|| format!("configuring S3 for {uri}"))?;
            return Ok(Store {
                store: Arc::new(store),
                prefix: ObjPath::from(prefix.as_str()),
                local_root: None,
                display_root: format!("s3://{bucket}"),
                pattern: pattern.map(|p| glob::Pattern::new(&p)).transpose()?,
            });
        }
        let path = uri.strip_prefix("file://").unwrap_or(uri);
        let (root, pattern) = split_glob(path);
        let root = if root.is_empty() { ".".to_string() } else { root };
        let root = PathBuf::from(root);
        if create_local {
            std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        }
        let root =
            std::fs::canonicalize(&root).with_context(|| format!("{}: no such directory", root.display()))?;
        if root.is_file() {
            // A single file: its folder is the root and its name the pattern.
            let name = root.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let parent = root.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
            let mut s = Store::open(&parent.display().to_string(), false)?;
            s.pattern = Some(glob::Pattern::new(&glob::Pattern::escape(&name))?);
            return Ok(s);
        }
        let store =
            LocalFileSystem::new_with_prefix(&root).with_context(|| format!("opening {}", root.display()))?;
        Ok(Store {
            store: Arc::new(store),
            prefix: ObjPath::default(),
            local_root: Some(root.clone()),
            display_root: root.display().to_string(),
            pattern: pattern.map(|p| glob::Pattern::new(&p)).transpose()?,
        })
    }

    /// The object path of `rel` (a `/`-separated path under the prefix).
    pub fn path(&self, rel: &str) -> ObjPath {
        let mut parts: Vec<String> = self.prefix.parts().map(|p| p.as_ref().to_string()).collect();
        parts.extend(rel.split('/').filter(|s| !s.is_empty()).map(String::from));
        ObjPath::from_iter(parts)
    }

    /// The URI of an object path, as users see it.
    pub fn uri_of(&self, path: &ObjPath) -> String {
        if self.local_root.is_some() {
            format!("{}/{}", self.display_root.trim_end_matches('/'), path)
        } else {
            format!("{}/{}", self.display_root, path)
        }
    }

    /// `rel` of an object path under the prefix.
    pub fn rel_of(&self, path: &ObjPath) -> String {
        let prefix = self.prefix.as_ref();
        let p = path.as_ref();
        p.strip_prefix(prefix).unwrap_or(p).trim_start_matches('/').to_string()
    }

    /// Lists the shards under this location (recursively, sorted by URI).
    pub fn list_shards(&self, rt: &Runtime) -> Result<Vec<ShardTask>> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let metas: Vec<object_store::ObjectMeta> = rt
            .block_on(self.store.list(prefix).try_collect())
            .with_context(|| format!("listing {}/{}", self.display_root, self.prefix))?;
        let mut shards = Vec::new();
        for meta in metas {
            let rel = self.rel_of(&meta.location);
            if rel.split('/').any(|c| c.starts_with('.') || c.starts_with('_')) {
                continue;
            }
            if let Some(p) = &self.pattern {
                if !p.matches(&rel) {
                    continue;
                }
            }
            let Some((format, compression)) = Format::detect(&rel) else {
                continue;
            };
            let version = meta.e_tag.clone().unwrap_or_else(|| meta.last_modified.to_rfc3339());
            shards.push(ShardTask {
                uri: self.uri_of(&meta.location),
                format,
                compression,
                size: meta.size,
                version,
                born: None,
            });
        }
        shards.sort();
        Ok(shards)
    }

    /// The object path of a shard URI listed by this store.
    fn path_of_uri(&self, uri: &str) -> Result<ObjPath, String> {
        let rest = uri
            .strip_prefix(self.display_root.trim_end_matches('/'))
            .ok_or_else(|| format!("{uri} is not under {}", self.display_root))?;
        ObjPath::parse(rest.trim_start_matches('/')).map_err(|e| format!("{uri}: {e}"))
    }

    pub fn put(&self, rt: &Runtime, rel: &str, bytes: Vec<u8>) -> Result<()> {
        let path = self.path(rel);
        rt.block_on(self.store.put(&path, PutPayload::from(bytes)))
            .with_context(|| format!("writing {}", self.uri_of(&path)))?;
        Ok(())
    }

    /// Flushes `rel` and its folder entry to disk (local stores; object stores are durable
    /// when a put returns).
    pub fn sync(&self, rel: &str) -> Result<()> {
        let Some(root) = &self.local_root else { return Ok(()) };
        let file = root.join(rel);
        std::fs::File::open(&file)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("syncing {}", file.display()))?;
        if let Some(dir) = file.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .with_context(|| format!("syncing {}", dir.display()))?;
        }
        Ok(())
    }

    /// Reads `rel`, or `None` when it does not exist.
    pub fn get_opt(&self, rt: &Runtime, rel: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(rel);
        let got = rt.block_on(async {
            match self.store.get(&path).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        Ok(got.with_context(|| format!("reading {}", self.uri_of(&path)))?.map(|b| b.to_vec()))
    }

    /// Copies a local file to `rel` (multipart for large files).
    pub fn upload(&self, rt: &Runtime, local: &Path, rel: &str) -> Result<()> {
        let path = self.path(rel);
        rt.block_on(async {
            let mut file = tokio::fs::File::open(local).await?;
            let mut writer = object_store::buffered::BufWriter::new(self.store.clone(), path.clone());
            tokio::io::copy(&mut file, &mut writer).await?;
            tokio::io::AsyncWriteExt::shutdown(&mut writer).await?;
            Ok::<_, std::io::Error>(())
        })
        .with_context(|| format!("uploading {} to {}", local.display(), self.uri_of(&path)))
    }

    /// Renames `from` to `to`; a missing `from` whose `to` exists counts as already done.
    pub fn rename(&self, rt: &Runtime, from: &str, to: &str) -> Result<()> {
        let (src, dst) = (self.path(from), self.path(to));
        rt.block_on(async {
            match self.store.rename(&src, &dst).await {
                Err(object_store::Error::NotFound { .. }) => match self.store.head(&dst).await {
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                },
                other => other,
            }
        })
        .with_context(|| format!("committing {} as {}", self.uri_of(&src), self.uri_of(&dst)))
    }

    /// Deletes `rel`; a missing object is not an error.
    pub fn delete(&self, rt: &Runtime, rel: &str) -> Result<()> {
        let path = self.path(rel);
        rt.block_on(async {
            match self.store.delete(&path).await {
                Err(object_store::Error::NotFound { .. }) => Ok(()),
                other => other,
            }
        })
        .with_context(|| format!("deleting {}", self.uri_of(&path)))
    }

    /// Relative paths of all objects under `rel`.
    pub fn list_rel(&self, rt: &Runtime, rel: &str) -> Result<Vec<String>> {
        let path = self.path(rel);
        let metas: Vec<object_store::ObjectMeta> = rt
            .block_on(self.store.list(Some(&path)).try_collect())
            .with_context(|| format!("listing {}", self.uri_of(&path)))?;
        Ok(metas.iter().map(|m| self.rel_of(&m.location)).collect())
    }
}

/// Splits `a/b/*.jsonl` into (`a/b`, Some(`*.jsonl`)): the directory part before the first
/// glob metacharacter and the rest as a pattern.
fn split_glob(path: &str) -> (String, Option<String>) {
    let comps: Vec<&str> = path.split('/').collect();
    match comps.iter().position(|c| c.contains(['*', '?', '['])) {
        None => (path.trim_end_matches('/').to_string(), None),
        Some(i) => {
            let root = comps[..i].join("/");
            let root = if root.is_empty() && path.starts_with('/') { "/".to_string() } else { root };
            (root, Some(comps[i..].join("/")))
        }
    }
}

/// Opens shards for the read operator: local files are read in place, remote objects are
/// streamed into a temporary file (hashing as they arrive) and deleted after reading.
/// Opens shards for the read operator. Remote shards are downloaded into the spool folder on
/// the I/O runtime; [`ShardOpener::prefetch`] starts that ahead of time, so the worker reads
/// one shard while the next ones arrive, and `open` waits only for what is not there yet.
pub struct StoreOpener {
    pub store: Store,
    pub rt: Arc<Runtime>,
    pub spool_dir: PathBuf,
    /// Downloads under way or done, by shard URI (one worker's; taken by `open`).
    prefetched: std::cell::RefCell<std::collections::HashMap<String, tokio::task::JoinHandle<Download>>>,
}

/// A downloaded shard: the spool file, its xxh3-128 and size.
type Download = Result<(tempfile::TempPath, String, u64), String>;

impl StoreOpener {
    pub fn new(store: Store, rt: Arc<Runtime>, spool_dir: PathBuf) -> StoreOpener {
        StoreOpener { store, rt, spool_dir, prefetched: Default::default() }
    }

    fn download(&self, task: &ShardTask) -> tokio::task::JoinHandle<Download> {
        let (store, spool_dir, uri) = (self.store.clone(), self.spool_dir.clone(), task.uri.clone());
        self.rt.spawn(async move {
            let path = store.path_of_uri(&uri)?;
            let mut spool = tempfile::Builder::new()
                .prefix("xinst-shard-")
                .tempfile_in(&spool_dir)
                .map_err(|e| format!("spool file in {}: {e}", spool_dir.display()))?;
            let fetched = async {
                let got = store.store.get(&path).await?;
                let mut stream = got.into_stream();
                let mut hasher = Xxh3::new();
                let mut size = 0u64;
                while let Some(chunk) = stream.try_next().await? {
                    hasher.update(&chunk);
                    size += chunk.len() as u64;
                    spool
                        .write_all(&chunk)
                        .map_err(|e| object_store::Error::Generic { store: "spool", source: Box::new(e) })?;
                }
                Ok::<_, object_store::Error>((format!("{:032x}", hasher.digest128()), size))
            };
            let (hash, size) = fetched.await.map_err(|e| format!("{uri}: {e}"))?;
            spool.flush().map_err(|e| e.to_string())?;
            Ok((spool.into_temp_path(), hash, size))
        })
    }
}

impl ShardOpener for StoreOpener {
    fn open(&self, task: &ShardTask) -> Result<OpenedShard, String> {
        if let Some(root) = &self.store.local_root {
            let local = root.join(self.store.path_of_uri(&task.uri)?.as_ref());
            let (content_hash, size) = hash_file(&local).map_err(|e| format!("{}: {e}", local.display()))?;
            return Ok(OpenedShard { path: local, content_hash, size, keep_alive: None });
        }
        let started = self.prefetched.borrow_mut().remove(&task.uri);
        let handle = started.unwrap_or_else(|| self.download(task));
        let (temp, content_hash, size) =
            self.rt.block_on(handle).map_err(|e| format!("{}: download failed: {e}", task.uri))??;
        Ok(OpenedShard { path: temp.to_path_buf(), content_hash, size, keep_alive: Some(Box::new(temp)) })
    }

    fn prefetch(&self, task: &ShardTask) {
        if self.store.local_root.is_none() && !self.prefetched.borrow().contains_key(&task.uri) {
            let handle = self.download(task);
            self.prefetched.borrow_mut().insert(task.uri.clone(), handle);
        }
    }
}

/// xxh3-128 (hex) and size of a local file.
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((format!("{:032x}", hasher.digest128()), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory object store stands in for S3 here: the property is the opener's, and
    /// the S3 tests run the same code against a real S3 server.
    #[test]
    fn a_prefetched_shard_opens_with_the_same_bytes_and_hash_and_its_download_is_taken_once() {
        use object_store::ObjectStoreExt;
        let rt = Arc::new(
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap(),
        );
        let mem: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let body = b"{\"text\": \"one\"}\n".repeat(1000);
        rt.block_on(mem.put(&ObjPath::from("in/a.jsonl"), PutPayload::from(body.clone()))).unwrap();
        let store = Store {
            store: mem,
            prefix: ObjPath::from("in"),
            local_root: None,
            display_root: "s3://b".into(),
            pattern: None,
        };
        let spool = tempfile::tempdir().unwrap();
        let opener = StoreOpener::new(store, rt, spool.path().to_path_buf());
        let task = ShardTask {
            uri: "s3://b/in/a.jsonl".into(),
            format: xinstruct_operators::source::Format::Jsonl,
            compression: xinstruct_operators::source::Compression::None,
            size: body.len() as u64,
            version: String::new(),
            born: None,
        };
        opener.prefetch(&task);
        opener.prefetch(&task);
        assert_eq!(opener.prefetched.borrow().len(), 1, "a second hint starts nothing");
        let ahead = opener.open(&task).unwrap();
        assert!(opener.prefetched.borrow().is_empty());
        assert_eq!(std::fs::read(&ahead.path).unwrap(), body);
        let direct = opener.open(&task).unwrap();
        assert_eq!((ahead.content_hash.clone(), ahead.size), (direct.content_hash.clone(), direct.size));
        assert_eq!(hash_file(&direct.path).unwrap(), (ahead.content_hash.clone(), ahead.size));
        drop((ahead, direct));
        assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 0, "spool files go with the shard");
    }

    #[test]
    fn splits_globs() {
        assert_eq!(split_glob("data/x"), ("data/x".into(), None));
        assert_eq!(split_glob("data/*.jsonl"), ("data".into(), Some("*.jsonl".into())));
        assert_eq!(split_glob("/a/b/**/*.gz"), ("/a/b".into(), Some("**/*.gz".into())));
        assert_eq!(split_glob("pre/"), ("pre".into(), None));
    }
}
