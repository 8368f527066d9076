//! Sources: shard tasks in, documents out.
//!
//! A shard is one input file (a JSONL/JSONL.gz/JSONL.zst file, a Parquet file or a Common
//! Crawl WET file). The driver turns a listing into [`ShardTask`]s; [`read::ReadShards`]
//! spreads them over the workers, opens each through a [`ShardOpener`] (local path or an
//! object-store download supplied by the application) and decodes it with the format's
//! reader. Format readers are plain iterators so they can be tested without a dataflow.

pub mod jsonl;
pub mod parquet;
pub mod read;
pub mod warc;
pub mod wet;

use crate::doc::{Doc, Reject};
use crate::Epoch;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use read::{ReadShards, ShardReport, SourceConfig, SourceOutput};

/// File formats xinstruct reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Jsonl,
    Parquet,
    Wet,
}

/// Stream compression of a JSONL or WET shard (Parquet compresses inside the file).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Format {
    /// Recognizes a shard by its name; `None` for files that are not shards (READMEs, …).
    pub fn detect(name: &str) -> Option<(Format, Compression)> {
        let lower = name.to_ascii_lowercase();
        let (stem, compression) = if let Some(s) = lower.strip_suffix(".gz") {
            (s, Compression::Gzip)
        } else if let Some(s) = lower.strip_suffix(".zst") {
            (s, Compression::Zstd)
        } else {
            (lower.as_str(), Compression::None)
        };
        if stem.ends_with(".warc.wet") || stem.ends_with(".wet") {
            Some((Format::Wet, compression))
        } else if stem.ends_with(".jsonl") || stem.ends_with(".json") || stem.ends_with(".ndjson") {
            Some((Format::Jsonl, compression))
        } else if stem.ends_with(".parquet") && compression == Compression::None {
            Some((Format::Parquet, compression))
        } else {
            None
        }
    }
}

/// One shard to read in an epoch.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShardTask {
    pub uri: String,
    pub format: Format,
    pub compression: Compression,
    pub size: u64,
    /// The store's version of the object: S3 ETag or local mtime.
    pub version: String,
    /// The epoch the shard was first committed in, when an unchanged shard is read again
    /// (dedup promoted or demoted one of its documents, or a takedown names one): its
    /// documents keep their place in the dedup order. `None` for new or changed content.
    #[serde(default)]
    pub born: Option<Epoch>,
}

/// A shard made readable as a local file.
pub struct OpenedShard {
    pub path: PathBuf,
    /// xxh3-128 of the raw shard bytes, hex.
    pub content_hash: String,
    pub size: u64,
    /// Keeps a downloaded temporary copy alive while it is read.
    pub keep_alive: Option<Box<dyn std::any::Any>>,
}

/// Makes shards readable: the application implements it over local files and object stores.
pub trait ShardOpener {
    fn open(&self, task: &ShardTask) -> Result<OpenedShard, String>;

    /// A hint that `task` will be opened soon: an opener of remote shards starts downloading
    /// it off the worker thread. Called again for the same task, it does nothing.
    fn prefetch(&self, _task: &ShardTask) {}
}

/// What a format reader yields.
#[derive(Debug)]
pub enum Record {
    Doc(Doc),
    /// A record that cannot become a document (bad JSON, missing text, …).
    Reject(Reject),
    /// The rest of the file cannot be read (truncated stream, corrupt footer, …).
    FileError(Reject),
}

/// Live progress shared with a progress bar: raw bytes consumed and documents produced.
#[derive(Default, Debug)]
pub struct Progress {
    pub bytes: AtomicU64,
    pub docs: AtomicU64,
    pub shards: AtomicU64,
    /// Set by the driver when it plans work: the total a progress bar counts towards.
    pub planned_bytes: AtomicU64,
    pub planned_shards: AtomicU64,
    /// Requests sent to a model (memo misses) and those answered, over all stages.
    pub model_requests: AtomicU64,
    pub model_done: AtomicU64,
    /// The run's generators, asked whether their server is down (the bar says so).
    pub generators: Generators,
    /// Time the model had at least one request out (the generator's busy time).
    pub model_busy: BusyClock,
    /// Set while a progress bar draws: [`Progress::note`] then hands it the lines to print.
    pub bar: std::sync::atomic::AtomicBool,
    pub notes: std::sync::Mutex<Vec<String>>,
}

impl Progress {
    /// A message for the user (the run's plan): printed above the progress bar when one
    /// draws, else to stderr at once.
    pub fn note(&self, text: &str) {
        if self.bar.load(Ordering::SeqCst) {
            self.notes.lock().unwrap_or_else(|e| e.into_inner()).push(text.to_string());
        } else {
            eprintln!("{text}");
        }
    }

    /// The notes not yet printed.
    pub fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Busy time of a resource used by many callers at once: the time at least one of them had
/// work out. Each [`BusyClock::start`] is matched by an [`BusyClock::end`].
#[derive(Default, Debug)]
pub struct BusyClock(std::sync::Mutex<BusyState>);

#[derive(Default, Debug)]
struct BusyState {
    out: u64,
    since: Option<std::time::Instant>,
    busy: std::time::Duration,
}

impl BusyClock {
    pub fn start(&self) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if s.out == 0 {
            s.since = Some(std::time::Instant::now());
        }
        s.out += 1;
    }

    pub fn end(&self) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.out = s.out.saturating_sub(1);
        if s.out == 0 {
            if let Some(since) = s.since.take() {
                s.busy += since.elapsed();
            }
        }
    }

    /// Busy time so far, the current stretch included.
    pub fn busy(&self) -> std::time::Duration {
        let s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.busy + s.since.map_or(std::time::Duration::ZERO, |t| t.elapsed())
    }
}

/// The generators a progress bar watches for outages.
#[derive(Default)]
pub struct Generators(std::sync::Mutex<Vec<Arc<dyn crate::generate::Generator>>>);

impl std::fmt::Debug for Generators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Generators({})", self.0.lock().map_or(0, |g| g.len()))
    }
}

impl Generators {
    pub fn watch(&self, g: Arc<dyn crate::generate::Generator>) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(g);
    }
    /// The first down server's line, if any.
    pub fn outage(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).iter().find_map(|g| g.outage())
    }

    /// The servers of every watched generator.
    pub fn endpoints(&self) -> Vec<crate::generate::pool::EndpointState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).iter().flat_map(|g| g.endpoints()).collect()
    }

    /// A short line on the pools' servers for the progress bar (`servers 1/2 up, 3+0 out,
    /// 127.0.0.1:8001 down 12 s`); `None` without a pool of more than one server.
    pub fn pool_line(&self) -> Option<String> {
        let servers = self.endpoints();
        if servers.len() < 2 {
            return None;
        }
        let up = servers.iter().filter(|s| s.down_since.is_none()).count();
        let out: Vec<String> = servers.iter().map(|s| s.outstanding.to_string()).collect();
        let mut line = format!("servers {up}/{} up, {} out", servers.len(), out.join("+"));
        for s in servers.iter().filter(|s| s.down_since.is_some()) {
            let host = s.url.trim_start_matches("http://").trim_start_matches("https://");
            let host = host.split('/').next().unwrap_or(host);
            let secs = s.down_since.map_or(0, |t| t.elapsed().as_secs());
            line.push_str(&format!(", {host} down {secs} s"));
        }
        Some(line)
    }
}

/// Counts raw bytes as a decoder pulls them from the file.
pub(crate) struct CountingRead<R> {
    inner: R,
    progress: Option<Arc<Progress>>,
}

impl<R> CountingRead<R> {
    pub(crate) fn new(inner: R, progress: Option<Arc<Progress>>) -> Self {
        CountingRead { inner, progress }
    }
}

impl<R: Read> Read for CountingRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(p) = &self.progress {
            p.bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(n)
    }
}

/// Reader failures that mean the stream ended early rather than a bad record.
pub(crate) fn io_reason(err: &std::io::Error) -> &'static str {
    match err.kind() {
        std::io::ErrorKind::UnexpectedEof => "truncated_input",
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput => "corrupt_stream",
        _ => "io_error",
    }
}

#[cfg(test)]
mod busy_tests {
    use super::BusyClock;
    use std::time::Duration;

    #[test]
    fn overlapping_work_counts_once_and_idle_time_not_at_all() {
        let clock = BusyClock::default();
        clock.start();
        clock.start();
        std::thread::sleep(Duration::from_millis(30));
        clock.end();
        std::thread::sleep(Duration::from_millis(30));
        clock.end();
        std::thread::sleep(Duration::from_millis(60));
        let busy = clock.busy();
        assert!(busy >= Duration::from_millis(60) && busy < Duration::from_millis(110), "{busy:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats_by_name() {
        assert_eq!(Format::detect("a/b.jsonl.gz"), Some((Format::Jsonl, Compression::Gzip)));
        assert_eq!(Format::detect("x.JSONL.zst"), Some((Format::Jsonl, Compression::Zstd)));
        assert_eq!(Format::detect("CC-MAIN-1.warc.wet.gz"), Some((Format::Wet, Compression::Gzip)));
        assert_eq!(Format::detect("f.parquet"), Some((Format::Parquet, Compression::None)));
        assert_eq!(Format::detect("README.md"), None);
        assert_eq!(Format::detect("x.parquet.gz"), None);
    }
}
