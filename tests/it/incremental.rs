//! Reruns: unchanged input does nothing, new shards alone are processed, a changed shard is
//! retracted and reprocessed, and `watch` turns each poll with new shards into an epoch.

use crate::common::*;
use std::time::{Duration, Instant};

#[test]
fn rerun_new_shard_changed_shard_and_prune() {
    let tmp = tempdir();
    let input = tmp.path().join("in");
    let out = tmp.path().join("out");
    copy_sample(&input);
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let (_, first) = run_xinst(i, o, &RAW, 0);
    assert_eq!(first["shards_processed"], 5);
    let before = read_rows(&out);
    let files_before = files_under(&out);

    // Same input: nothing to do, nothing changes.
    let (_, second) = run_xinst(i, o, &RAW, 0);
    assert_eq!(second["shards_processed"], 0);
    assert_eq!(second["shards_unchanged"], 5);
    assert_eq!(read_rows(&out), before);

    // Same bytes, new mtime: re-stamped, not reprocessed.
    let p = input.join("culturax-00000.jsonl");
    let bytes = std::fs::read(&p).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&p, &bytes).unwrap();
    let (_, touched) = run_xinst(i, o, &RAW, 0);
    assert_eq!(touched["shards_processed"], 0);

    // One new shard: only it is processed, and only files of it appear.
    write_jsonl_shard(&input.join("new-00000.jsonl"), 7, 40, 50);
    let (_, third) = run_xinst(i, o, &RAW, 0);
    assert_eq!(third["shards_processed"], 1);
    assert_eq!(third["shards_new"], 1);
    let rows = read_rows(&out);
    assert_eq!(rows.len(), before.len() + 40);
    let files_now = files_under(&out);
    let added: Vec<&String> = files_now
        .iter()
        .filter(|f| !files_before.contains(f) && !f.starts_with("stats/") && !f.starts_with("_xinstruct/"))
        .collect();
    assert_eq!(added.len(), 1, "{added:?}");
    assert!(added[0].starts_with("lang=und/part-"));

    // A changed shard: its old rows are retracted, the new ones committed.
    write_jsonl_shard(&input.join("new-00000.jsonl"), 8, 25, 50);
    let (_, fourth) = run_xinst(i, o, &RAW, 0);
    assert_eq!(fourth["shards_processed"], 1);
    assert_eq!(fourth["shards_changed"], 1);
    let rows = read_rows(&out);
    assert_eq!(rows.len(), before.len() + 25);
    let new_rows: Vec<&Row> = rows.iter().filter(|r| r.shard.ends_with("new-00000.jsonl")).collect();
    assert_eq!(new_rows.len(), 25);
    assert!(new_rows.iter().all(|r| r.url.as_deref().unwrap().starts_with("https://ex.org/8/")));
    let m = manifest(&out);
    let epochs = m["epochs"].as_array().unwrap();
    assert_eq!(epochs.last().unwrap()["shards_replaced"], 1);

    // Without --prune a vanished shard's rows stay; with it they go.
    std::fs::remove_file(input.join("new-00000.jsonl")).unwrap();
    run_xinst(i, o, &RAW, 0);
    assert_eq!(read_rows(&out).len(), before.len() + 25);
    let (_, pruned) = run_xinst(i, o, &["--prune", RAW[0], RAW[1]], 0);
    assert_eq!(pruned["shards_pruned"], 1);
    assert_eq!(read_rows(&out), before);
}

#[test]
fn watch_turns_new_shards_into_epochs_and_stops_cleanly_on_interrupt() {
    let tmp = tempdir();
    let input = tmp.path().join("in");
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&input).unwrap();
    write_jsonl_shard(&input.join("a.jsonl"), 1, 30, 40);
    let mut child = xinst()
        .args([
            "watch",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--interval",
            "1",
            "--no-progress",
            RAW[0],
            RAW[1],
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut wait_for_epochs = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let committed = std::fs::read(out.join("_xinstruct/manifest.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .map(|m| m["epochs"].as_array().map_or(0, |e| e.len()))
                .unwrap_or(0);
            if committed >= n {
                return;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("watch exited early ({status}) before committing {n} epochs");
            }
            assert!(Instant::now() < deadline, "watch did not commit {n} epochs");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for_epochs(1);
    write_jsonl_shard(&input.join("b.jsonl"), 2, 20, 40);
    wait_for_epochs(2);
    let status = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(read_rows(&out).len(), 50);
    assert_eq!(manifest(&out)["epochs"].as_array().unwrap().len(), 2);
}
