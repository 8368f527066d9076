//! `kill -9` in the middle of a run, then a rerun: the dataset equals, as a multiset of rows,
//! the one an uninterrupted run produces.

use crate::common::*;
use std::time::{Duration, Instant};

#[test]
fn kill_9_mid_run_then_rerun_loses_and_duplicates_nothing() {
    kill_9_then_rerun("1");
}

/// Three epochs in flight when the kill comes: the uncommitted ones are redone, once.
#[test]
fn kill_9_with_epochs_in_flight_loses_and_duplicates_nothing() {
    kill_9_then_rerun("3");
}

fn kill_9_then_rerun(in_flight: &str) {
    let tmp = tempdir();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let shards = 40;
    for s in 0..shards {
        write_jsonl_shard(&input.join(format!("shard-{s:03}.jsonl")), s, 1500, 120);
    }
    let (i, killed, clean) =
        (input.to_str().unwrap().to_string(), tmp.path().join("killed"), tmp.path().join("clean"));

    let mut child = xinst()
        .args(["run", "--no-progress", "--shards-per-epoch", "1", "--epochs-in-flight", in_flight])
        .args([RAW[0], RAW[1], "--input", &i, "--output"])
        .arg(&killed)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let committed_at_kill = loop {
        let committed = std::fs::read(killed.join("_xinstruct/manifest.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .map(|m| m["shards"].as_object().map_or(0, |s| s.len()))
            .unwrap_or(0);
        if committed >= 3 {
            child.kill().unwrap(); // SIGKILL
            break committed;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run finished before it could be killed");
        assert!(Instant::now() < deadline, "no epoch committed in time");
        std::thread::sleep(Duration::from_millis(5));
    };
    child.wait().unwrap();
    assert!(committed_at_kill < shards as usize, "killed after the run had finished");
    let after_kill = manifest(&killed)["shards"].as_object().unwrap().len();
    assert!(after_kill < shards as usize, "the kill came too late to test anything");

    let (_, resumed) = run_xinst(
        &i,
        killed.to_str().unwrap(),
        &["--shards-per-epoch", "4", "--epochs-in-flight", in_flight, RAW[0], RAW[1]],
        0,
    );
    assert_eq!(resumed["shards_processed"].as_u64().unwrap() as usize, shards as usize - after_kill);
    run_xinst(&i, clean.to_str().unwrap(), &RAW, 0);

    let (a, b) = (read_rows(&killed), read_rows(&clean));
    assert_eq!(a.len(), 40 * 1500);
    assert!(a == b, "resumed dataset differs from an uninterrupted run");
    // No temporaries or uncommitted parts are left behind.
    assert!(files_under(&killed).iter().all(|f| !f.starts_with("_xinstruct/tmp/")));
}
