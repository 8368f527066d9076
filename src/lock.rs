//! One writer at a time per dataset. `run`, `watch`, `retract` and `diversify` hold the lock
//! while they write; a second writer gets an error naming the holder instead of deleting the
//! first one's uncommitted parts or overwriting its manifest.
//!
//! Local output: an OS file lock on `_xinstruct/lock` (released by the kernel when the process
//! dies, so a kill -9 leaves no stale lock); the file holds who has it. S3: a lease object
//! `_xinstruct/lock.json` created with a conditional put (`If-None-Match: *`), renewed while the
//! writer runs and deleted at the end; a lease not renewed for its time to live (a writer that
//! died) is taken over.

use crate::store::Store;
use anyhow::{bail, Context, Result};
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Runtime;

pub const LOCK_FILE: &str = "_xinstruct/lock";
pub const LEASE: &str = "_xinstruct/lock.json";
/// How long an S3 lease holds without renewal.
const LEASE_TTL_SECS: u64 = 120;

/// Who holds the lock.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Holder {
    pid: u32,
    host: String,
    command: String,
    since: String,
    /// Unix seconds after which an S3 lease may be taken over (0 for a local lock).
    #[serde(default)]
    expires: u64,
}

impl Holder {
    fn me(command: &str, expires: u64) -> Holder {
        Holder {
            pid: std::process::id(),
            host: std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default(),
            command: command.to_string(),
            since: crate::manifest::now_rfc3339(),
            expires,
        }
    }

    /// Whether the holder may still be running: on this host its process must exist; on
    /// another, only its lease's expiry can tell.
    fn may_be_alive(&self) -> bool {
        let here = Holder::me("", 0).host;
        if !here.is_empty() && self.host == here && Path::new("/proc/self").exists() {
            return Path::new(&format!("/proc/{}", self.pid)).exists() && self.pid != std::process::id();
        }
        self.expires > unix_now()
    }

    fn describe(&self) -> String {
        format!("`xinst {}` (pid {} on {}, since {})", self.command, self.pid, self.host, self.since)
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Held until dropped.
pub struct WriterLock {
    _file: Option<std::fs::File>,
    lease: Option<Lease>,
}

struct Lease {
    stop: Arc<AtomicBool>,
    renewer: Option<std::thread::JoinHandle<()>>,
    store: Store,
    rt: Arc<Runtime>,
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.as_mut() {
            lease.stop.store(true, Ordering::SeqCst);
            if let Some(t) = lease.renewer.take() {
                let _ = t.join();
            }
            let path = lease.store.path(LEASE);
            let _ = lease.rt.block_on(lease.store.store.delete(&path));
        }
    }
}

/// Takes the dataset's writer lock for `command` (`run`, `watch`, `retract`, `diversify`), or
/// fails naming who holds it.
pub fn acquire(out: &Store, rt: &Arc<Runtime>, command: &str) -> Result<WriterLock> {
    match &out.local_root {
        Some(root) => {
            let path = root.join(LOCK_FILE);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    let held = std::fs::read_to_string(&path).unwrap_or_default();
                    let who = serde_json::from_str::<Holder>(&held)
                        .map(|h| h.describe())
                        .unwrap_or_else(|_| "another xinstruct process".to_string());
                    bail!(
                        "{} is being written by {who}; one writer at a time (wait for it, or stop it first)",
                        out.display_root
                    );
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("locking {}", path.display()))
                }
            }
            use std::io::{Seek, Write};
            file.set_len(0)?;
            file.seek(std::io::SeekFrom::Start(0))?;
            file.write_all(&serde_json::to_vec(&Holder::me(command, 0))?)?;
            file.flush()?;
            Ok(WriterLock { _file: Some(file), lease: None })
        }
        None => acquire_lease(out, rt, command),
    }
}

fn acquire_lease(out: &Store, rt: &Arc<Runtime>, command: &str) -> Result<WriterLock> {
    let path = out.path(LEASE);
    let body = |h: &Holder| PutPayload::from(serde_json::to_vec(h).unwrap_or_default());
    let me = Holder::me(command, unix_now() + LEASE_TTL_SECS);
    let create = PutOptions { mode: PutMode::Create, ..Default::default() };
    let put = rt.block_on(out.store.put_opts(&path, body(&me), create));
    let mut version = match put {
        Ok(r) => UpdateVersion { e_tag: r.e_tag, version: r.version },
        Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => {
            let got = rt.block_on(async {
                let g = out.store.get(&path).await?;
                let meta = g.meta.clone();
                Ok::<_, object_store::Error>((g.bytes().await?, meta))
            })?;
            let holder: Option<Holder> = serde_json::from_slice(&got.0).ok();
            match holder {
                Some(h) if h.expires > unix_now() && h.may_be_alive() => bail!(
                    "{}/{} is being written by {}; one writer at a time (its lease {} expires in {} s unless renewed)",
                    out.display_root,
                    out.prefix,
                    h.describe(),
                    out.uri_of(&path),
                    h.expires - unix_now()
                ),
                _ => {
                    // The holder stopped renewing or its process is gone (it died): take
                    // over, if nobody else did meanwhile.
                    let update = PutOptions {
                        mode: PutMode::Update(UpdateVersion { e_tag: got.1.e_tag, version: got.1.version }),
                        ..Default::default()
                    };
                    let r = rt
                        .block_on(out.store.put_opts(&path, body(&me), update))
                        .with_context(|| format!("taking over the expired lease {}", out.uri_of(&path)))?;
                    tracing::warn!("took over an expired writer lease at {}", out.uri_of(&path));
                    UpdateVersion { e_tag: r.e_tag, version: r.version }
                }
            }
        }
        Err(e) => return Err(e).with_context(|| format!("creating the writer lease {}", out.uri_of(&path))),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let renewer = {
        let (stop, store, rt, command) = (stop.clone(), out.clone(), rt.clone(), command.to_string());
        std::thread::Builder::new().name("lease".into()).spawn(move || {
            let every = Duration::from_secs(LEASE_TTL_SECS / 4);
            let mut last = std::time::Instant::now();
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(200));
                if last.elapsed() < every {
                    continue;
                }
                last = std::time::Instant::now();
                let me = Holder::me(&command, unix_now() + LEASE_TTL_SECS);
                let opts = PutOptions { mode: PutMode::Update(version.clone()), ..Default::default() };
                match rt.block_on(store.store.put_opts(&store.path(LEASE), body(&me), opts)) {
                    Ok(r) => version = UpdateVersion { e_tag: r.e_tag, version: r.version },
                    Err(e) => tracing::error!("renewing the writer lease: {e}"),
                }
            }
        })?
    };
    Ok(WriterLock {
        _file: None,
        lease: Some(Lease { stop, renewer: Some(renewer), store: out.clone(), rt: rt.clone() }),
    })
}
