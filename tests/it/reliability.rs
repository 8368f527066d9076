//! Failure paths against real parts: a model server (`xinst serve` on the bundled Gemma) behind
//! a fault-injecting proxy, WET files with bad records read by 1, 2 and 3 workers, and a sink
//! whose writes the OS refuses (`ulimit -f`).

use crate::common::*;
use crate::filters::documents;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the proxy does with a request.
#[derive(Default)]
struct Faults {
    /// Answer every request with 503.
    down: AtomicBool,
    /// After this many forwarded requests, answer 503 for `blip` (once).
    blip_after: AtomicUsize,
    blip: Mutex<Option<(Duration, Option<Instant>)>>,
    forwarded: AtomicUsize,
    failed: AtomicUsize,
}

impl Faults {
    fn fail_now(&self) -> bool {
        if self.down.load(Ordering::SeqCst) {
            return true;
        }
        let mut blip = self.blip.lock().unwrap();
        match blip.as_mut() {
            Some((len, started)) => match started {
                Some(at) => at.elapsed() < *len,
                None if self.forwarded.load(Ordering::SeqCst) >= self.blip_after.load(Ordering::SeqCst) => {
                    *started = Some(Instant::now());
                    true
                }
                None => false,
            },
            None => false,
        }
    }
}

/// A proxy in front of `upstream` that fails requests as `faults` says (503 with a JSON error,
/// as vLLM answers when overloaded) and forwards the rest; one thread per request.
fn fault_proxy(upstream: &str, faults: Arc<Faults>) -> String {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let addr = match server.server_addr() {
        tiny_http::ListenAddr::IP(a) => a.to_string(),
        _ => unreachable!(),
    };
    let upstream = upstream.trim_end_matches("/v1").trim_start_matches("http://").to_string();
    std::thread::spawn(move || {
        for mut req in server.incoming_requests() {
            let (faults, upstream) = (faults.clone(), upstream.clone());
            std::thread::spawn(move || {
                let mut body = String::new();
                req.as_reader().read_to_string(&mut body).unwrap();
                if faults.fail_now() {
                    faults.failed.fetch_add(1, Ordering::SeqCst);
                    let _ = req.respond(
                        tiny_http::Response::from_string(r#"{"error":"service unavailable"}"#)
                            .with_status_code(503),
                    );
                    return;
                }
                faults.forwarded.fetch_add(1, Ordering::SeqCst);
                crate::generate::forward(&upstream, req, &body);
            });
        }
    });
    format!("http://{addr}/v1")
}

/// Three real documents (Swahili, Finnish, Turkish) in one shard; language ID keeps two or
/// three of them.
fn corpus(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let lines: Vec<String> = ["swh", "fin", "tur"]
        .iter()
        .enumerate()
        .map(|(i, code)| {
            serde_json::json!({"id": format!("doc-{i}-{code}"), "text": documents(code).remove(2)})
                .to_string()
        })
        .collect();
    std::fs::write(dir.join("udhr.jsonl"), lines.join("\n") + "\n").unwrap();
}

fn config(path: &Path, url: &str, memo: &Path, max_outage_secs: u64) {
    config_toml(path, &format!("{url:?}"), memo, max_outage_secs)
}

/// `generator` as a TOML value (a string, or an array for a pool).
fn config_toml(path: &Path, generator: &str, memo: &Path, max_outage_secs: u64) {
    std::fs::write(
        path,
        format!(
            "[instruct]\ngenerator = {generator}\nmemo_path = {:?}\n[reverse_instruction]\ntemplate = \"fewshot\"\n\
             [openai]\nmodel = \"gemma-3-270m\"\nretries = 1\nbackoff_ms = 50\nbreaker_failures = 2\n\
             max_outage_secs = {max_outage_secs}\n",
            memo.display().to_string()
        ),
    )
    .unwrap();
}

fn strip(v: Vec<PairRow>) -> Vec<(String, String, String, Option<u8>, u32)> {
    v.into_iter().map(|p| (p.id, p.instruction, p.label, p.score, p.iteration)).collect()
}

fn reasons(out: &Path) -> Vec<(u64, String)> {
    let mut r: Vec<(u64, String)> = read_rejects(out).into_iter().map(|(_, o, reason)| (o, reason)).collect();
    r.sort();
    r
}

/// The corpus (`tmp/in`), the config file, and an uninterrupted run against one server.
struct Reference {
    input: String,
    cfg: std::path::PathBuf,
    out: std::path::PathBuf,
    want: Vec<(String, String, String, Option<u8>, u32)>,
}

fn reference_run(tmp: &Path, url: &str) -> Reference {
    let input = tmp.join("in");
    corpus(&input);
    let cfg = tmp.join("x.toml");
    let out = tmp.join("reference");
    config(&cfg, url, &tmp.join("memo-a.redb"), 60);
    run_xinst(input.to_str().unwrap(), out.to_str().unwrap(), &["--config", cfg.to_str().unwrap()], 0);
    let want = strip(pairs(&out));
    assert!(!want.is_empty(), "the reference run made no pair: {:?}", read_rejects(&out));
    Reference { input: input.to_str().unwrap().to_string(), cfg, out, want }
}

#[test]
fn a_model_outage_is_pending_work_that_the_next_run_completes() {
    let served = crate::generate::serve();
    let tmp = tempdir();
    let Reference { input, cfg, out: reference, want } = reference_run(tmp.path(), &served.url);
    let i = input.as_str();

    // The server is down for the whole run: nothing is a reject, the run says what waits.
    let faults = Arc::new(Faults::default());
    faults.down.store(true, Ordering::SeqCst);
    let url = fault_proxy(&served.url, faults.clone());
    let out = tmp.path().join("out");
    config(&cfg, &url, &tmp.path().join("memo-b.redb"), 2);
    let started = Instant::now();
    let (o, s) = run_xinst(i, out.to_str().unwrap(), &["--config", cfg.to_str().unwrap()], 4);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the breaker fails waiting requests after the outage budget"
    );
    let reached = s["operators"]["reverse_instruction"]["docs_in"].as_u64().unwrap();
    assert!(reached >= 2, "{s}");
    assert!(err.contains(&format!("awaiting the model: {reached} documents of 1 shards")), "{err}");
    assert!(err.contains("breaker open") && err.contains("503"), "the last error is named: {err}");
    assert_eq!(s["awaiting_model"], reached, "{s}");
    assert!(reasons(&out).iter().all(|(_, r)| !r.starts_with("gen_")), "{:?}", reasons(&out));
    assert!(pairs(&out).is_empty());
    let m = manifest(&out);
    assert_eq!(m["awaiting"].as_object().unwrap().len(), 1, "{m}");
    let calls_while_down = faults.failed.load(Ordering::SeqCst);
    assert!(
        calls_while_down <= 12,
        "the breaker stops the stage from burning through the queue: {calls_while_down}"
    );

    // Back, with a brief outage mid-run: the rerun reads the waiting shard again, rides out
    // the blip, and the dataset equals the uninterrupted run's.
    faults.down.store(false, Ordering::SeqCst);
    faults.blip_after.store(2, Ordering::SeqCst);
    *faults.blip.lock().unwrap() = Some((Duration::from_millis(1500), None));
    let failed_before = faults.failed.load(Ordering::SeqCst);
    config(&cfg, &url, &tmp.path().join("memo-b.redb"), 60);
    let (o, s) = run_xinst(i, out.to_str().unwrap(), &["--config", cfg.to_str().unwrap()], 0);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(faults.failed.load(Ordering::SeqCst) > failed_before, "the blip happened");
    assert_eq!(s["shards_retried"], 1, "{err}");
    assert_eq!(s["awaiting_model"], 0, "{err}");
    assert_eq!(strip(pairs(&out)), want);
    assert_eq!(reasons(&out), reasons(&reference));
    assert!(manifest(&out).get("awaiting").is_none());

    // Nothing waits: the next run has nothing to do.
    let (_, s) = run_xinst(i, out.to_str().unwrap(), &["--config", cfg.to_str().unwrap()], 0);
    assert_eq!(s["shards_processed"], 0);
}

/// A pool of two real servers, one killed once it has answered a request of the run: the run
/// ends clean (nothing awaits the model, no model reject) and its dataset equals a run against
/// one server; the summary gives each server's share.
#[test]
fn a_pool_server_killed_mid_run_loses_nothing() {
    let (a, b) = (crate::generate::serve(), crate::generate::serve());
    let tmp = tempdir();
    let Reference { input, cfg, out: reference, want } = reference_run(tmp.path(), &a.url);
    let i = input.as_str();

    let (urls, before) = ([a.url.clone(), b.url.clone()], [a.metrics().2, b.metrics().2]);
    config_toml(&cfg, &format!("[{:?}, {:?}]", urls[0], urls[1]), &tmp.path().join("memo-b.redb"), 60);
    let killer = std::thread::spawn(move || {
        let mut servers = [a, b];
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(300) {
            if let Some(k) = (0..2).find(|&k| servers[k].metrics().2 > before[k]) {
                servers[k].kill();
                return (k, servers);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no server answered a request of the run");
    });
    let out = tmp.path().join("out");
    let (o, s) = run_xinst(i, out.to_str().unwrap(), &["--config", cfg.to_str().unwrap()], 0);
    let (killed, _servers) = killer.join().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(s["awaiting_model"], 0, "{err}");
    assert_eq!(strip(pairs(&out)), want, "{err}");
    assert_eq!(reasons(&out), reasons(&reference));
    let servers = s["servers"].as_array().unwrap_or_else(|| panic!("{s}"));
    assert_eq!(servers.len(), 2, "{s}");
    // Its answer counted at the server may not have reached the client before the kill.
    let used = servers[killed]["answered"].as_u64().unwrap() + servers[killed]["failed"].as_u64().unwrap();
    assert!(used >= 1, "{s}");
    let answered: u64 = servers.iter().map(|e| e["answered"].as_u64().unwrap()).sum();
    assert_eq!(answered, calls(&s), "every model call was answered by one of the servers: {s}");
    assert!(err.contains("model servers: ") && err.contains(&urls[killed]), "{err}");
}

/// A WARC record as Common Crawl's WET files have them.
fn wet_record(kind: &str, id: &str, uri: &[u8], body: &str) -> Vec<u8> {
    let mut r =
        format!("WARC/1.0\r\nWARC-Type: {kind}\r\nWARC-Record-ID: <urn:uuid:{id}>\r\nWARC-Target-URI: ")
            .into_bytes();
    r.extend_from_slice(uri);
    r.extend(
        format!(
            "\r\nWARC-Date: 2024-04-12T12:34:56Z\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}\r\n\r\n",
            body.len()
        )
        .into_bytes(),
    );
    r
}

#[test]
fn bad_wet_records_are_rejects_and_the_run_ends_with_any_number_of_workers() {
    let tmp = tempdir();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let text = |i: usize| format!("Document number {i}. {}", synthetic_text(i as u64, 60));
    let mut a = wet_record("warcinfo", "info", b"", "software: test");
    for i in 0..3 {
        a.extend(wet_record("conversion", &format!("a{i}"), format!("http://a/{i}").as_bytes(), &text(i)));
    }
    // A Target-URI that is not UTF-8 (the warc crate panicked on it).
    a.extend(wet_record("conversion", "bad-uri", b"http://a/\xff\xfe", &text(10)));
    // A Content-Length that runs past the record's end.
    let long = String::from_utf8(wet_record("conversion", "bad-len", b"http://a/len", &text(11))).unwrap();
    let len = text(11).len();
    a.extend(
        long.replace(&format!("Content-Length: {len}"), &format!("Content-Length: {}", len + 40))
            .into_bytes(),
    );
    for i in 3..5 {
        a.extend(wet_record("conversion", &format!("a{i}"), format!("http://a/{i}").as_bytes(), &text(i)));
    }
    std::fs::write(input.join("a.warc.wet"), &a).unwrap();
    let mut b = Vec::new();
    for i in 5..8 {
        b.extend(wet_record("conversion", &format!("b{i}"), format!("http://b/{i}").as_bytes(), &text(i)));
    }
    std::fs::write(input.join("b.warc.wet"), &b).unwrap();
    // Random bytes named like a WET file: a file-level reject, not an empty success.
    let random: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    std::fs::write(input.join("c.warc.wet"), random).unwrap();

    for workers in ["1", "2", "3"] {
        let out = tmp.path().join(format!("out-{workers}"));
        let started = Instant::now();
        let mut args = RAW.to_vec();
        args.extend(["--workers", workers]);
        let (o, s) = run_xinst(input.to_str().unwrap(), out.to_str().unwrap(), &args, 3);
        assert!(started.elapsed() < Duration::from_secs(60), "{workers} workers: no hang");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("c.warc.wet") && err.contains("no WARC record"), "{err}");
        let mut ids: Vec<String> = read_rows(&out).into_iter().map(|r| r.id).collect();
        ids.sort();
        let want: Vec<String> = ["a0", "a1", "a2", "a3", "a4", "b5", "b6", "b7"]
            .iter()
            .map(|i| format!("urn:uuid:{i}"))
            .collect();
        assert_eq!(ids, want, "{workers} workers");
        let mut rejects: Vec<String> = read_rejects(&out).into_iter().map(|(_, _, r)| r).collect();
        rejects.sort();
        assert_eq!(
            rejects,
            ["corrupt_warc", "invalid_utf8_header", "no_warc_record"],
            "{workers} workers: {s}"
        );
    }
    let rejects = std::process::Command::new(env!("CARGO_BIN_EXE_xinst"))
        .args(["sql", "--format", "csv", "--data"])
        .arg(tmp.path().join("out-2"))
        .arg("SELECT reason, detail, doc_id FROM rejects ORDER BY reason")
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&rejects.stdout);
    assert!(csv.contains("Content-Length") && csv.contains("at byte"), "{csv}");
    assert!(csv.contains("WARC-Target-URI") && csv.contains("urn:uuid:bad-uri"), "{csv}");
}

#[test]
fn a_sink_that_cannot_write_ends_a_two_worker_run_with_nothing_committed() {
    let tmp = tempdir();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    for s in 0..4 {
        write_jsonl_shard(&input.join(format!("s{s}.jsonl")), s, 400, 150);
    }
    let out = tmp.path().join("out");
    // Files may not grow past 64 blocks: a part of the dataset does, and its write fails with
    // EFBIG (SIGXFSZ ignored, as a long-running service would).
    let script = format!(
        "trap '' XFSZ; ulimit -f 64; exec {:?} run --no-progress --workers 2 --input {:?} --output {:?} {} {}",
        env!("CARGO_BIN_EXE_xinst"),
        input,
        out,
        RAW[0],
        RAW[1]
    );
    let mut child = std::process::Command::new("sh")
        .args(["-c", &script])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("the run hung after a sink error");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("writing the dataset failed") && err.contains("File too large"), "{err}");
    let committed = std::fs::read(out.join("_xinstruct/manifest.json"))
        .map(|b| {
            serde_json::from_slice::<serde_json::Value>(&b).unwrap()["shards"].as_object().unwrap().len()
        })
        .unwrap_or(0);
    assert_eq!(committed, 0, "nothing of the failing epoch is committed");
    assert!(read_rows(&out).is_empty());
}

#[test]
fn files_xinstruct_did_not_write_are_never_deleted_and_a_foreign_folder_needs_force() {
    let tmp = tempdir();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(out.join("lang=sw_Latn")).unwrap();
    std::fs::write(out.join("lang=sw_Latn/mine.parquet"), b"a user's file").unwrap();
    std::fs::write(out.join("notes.txt"), b"keep me").unwrap();
    let input = sample_dir();
    let i = input.to_str().unwrap();
    let (o, _) = run_xinst(i, out.to_str().unwrap(), &FILTERS, 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("is not empty and has no _xinstruct/manifest.json") && err.contains("--force"),
        "{err}"
    );
    assert!(!out.join("_xinstruct/manifest.json").exists());

    let mut forced = FILTERS.to_vec();
    forced.push("--force");
    run_xinst(i, out.to_str().unwrap(), &forced, 0);
    // Twice: recovery at the start of the second run must leave them too.
    run_xinst(i, out.to_str().unwrap(), &FILTERS, 0);
    assert_eq!(std::fs::read(out.join("lang=sw_Latn/mine.parquet")).unwrap(), b"a user's file");
    assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), b"keep me");
    // SQL reads the committed files only, and says the stray one is there.
    let sql = xinst()
        .args(["sql", "--format", "csv", "--data"])
        .arg(&out)
        .arg("SELECT COUNT(*) FROM pairs")
        .output()
        .unwrap();
    assert!(sql.status.success(), "{}", String::from_utf8_lossy(&sql.stderr));
    assert!(String::from_utf8_lossy(&sql.stderr).contains("mine.parquet"));
}

#[test]
fn one_writer_at_a_time_and_watch_with_retract_loses_nothing() {
    let tmp = tempdir();
    let input = tmp.path().join("in");
    copy_sample(&input);
    let out = tmp.path().join("out");
    let mut watch = xinst()
        .args(["watch", "--no-progress", "--interval", "1"])
        .arg(&input)
        .arg("--output")
        .arg(&out)
        .args(FILTERS)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let committed = || committed_shards(&out);
    while committed() < 5 {
        assert!(started.elapsed() < Duration::from_secs(120), "watch did not commit the sample");
        std::thread::sleep(Duration::from_millis(200));
    }
    // A second writer is refused, naming the holder; so is a retraction.
    let (o, _) = run_xinst(input.to_str().unwrap(), out.to_str().unwrap(), &FILTERS, 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("is being written by `xinst watch`") && err.contains("one writer at a time"),
        "{err}"
    );
    let ids = tmp.path().join("ids.txt");
    let victim = read_rows(&out)[0].id.clone();
    std::fs::write(&ids, format!("{victim}\n")).unwrap();
    let r = xinst().args(["retract", "--ids"]).arg(&ids).arg("--data").arg(&out).output().unwrap();
    assert_eq!(r.status.code(), Some(1), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stderr).contains("is being written by `xinst watch`"));
    let before = read_rows(&out);
    // Ctrl-C ends the watch; then the retraction goes through and the next run applies it.
    let _ = std::process::Command::new("kill").args(["-INT", &watch.id().to_string()]).status();
    let status = watch.wait().unwrap();
    assert!(status.success() || status.code() == Some(0), "{status:?}");
    assert_eq!(read_rows(&out), before, "nothing the watch committed was lost");
    let r = xinst().args(["retract", "--ids"]).arg(&ids).arg("--data").arg(&out).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    run_xinst(input.to_str().unwrap(), out.to_str().unwrap(), &FILTERS, 0);
    // The taken-down document is gone, every other one is still there (a duplicate of it may
    // now stand in its place).
    let after: std::collections::BTreeSet<String> = read_rows(&out).into_iter().map(|r| r.id).collect();
    assert!(!after.contains(&victim));
    assert!(before.iter().all(|r| r.id == victim || after.contains(&r.id)));
}

#[test]
fn a_corrupt_cached_model_is_fetched_again_and_a_good_one_is_hashed_once() {
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let lid = xinstruct::models::lid_model().expect("lid-176 in the user cache");
    std::fs::create_dir_all(cache.join("lid-176")).unwrap();
    let copy = cache.join("lid-176/lid.176.ftz");
    let mut bytes = std::fs::read(&lid).unwrap();
    let good = bytes.clone();
    // Same size, other bytes: a size check alone took it (and fastText used it).
    for b in &mut bytes[1000..1100] {
        *b ^= 0x5a;
    }
    std::fs::write(&copy, &bytes).unwrap();
    let fetch =
        || xinst().env("XINST_CACHE_DIR", &cache).args(["models", "fetch", "lid-176"]).output().unwrap();
    let out = fetch();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("lid.176.ftz is corrupt") && err.contains("fetching it again"), "{err}");
    assert_eq!(std::fs::read(&copy).unwrap(), good, "re-fetched");
    assert!(cache.join("lid-176/lid.176.ftz.sha256-ok").exists(), "stamped once checked");
    let again = fetch();
    assert!(!String::from_utf8_lossy(&again.stderr).contains("corrupt"));
}
