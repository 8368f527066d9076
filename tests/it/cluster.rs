//! The same run as one process, as two workers, and as two timely processes on loopback.

use crate::common::*;

#[test]
fn two_processes_on_loopback_equal_one_process() {
    let tmp = tempdir();
    let input = tmp.path().join("in");
    copy_sample(&input);
    for s in 0..6 {
        write_jsonl_shard(&input.join(format!("extra-{s}.jsonl")), 100 + s, 300, 60);
    }
    let i = input.to_str().unwrap();
    let single = tmp.path().join("single");
    // Two shards an epoch (six epochs) for every layout: which duplicate dedup keeps depends
    // on the epochs' composition, not on workers, processes or epochs in flight.
    run_xinst(i, single.to_str().unwrap(), &["--shards-per-epoch", "2", FILTERS[0], FILTERS[1]], 0);
    // The full pipeline: language ID rejects the synthetic shards and keeps the sample's
    // target-language documents; every layout must give the same rows and rejects.
    let expected = read_rows(&single);
    assert!(expected.len() > 100, "{}", expected.len());
    assert_eq!(read_rejects(&single).len() + expected.len(), 287 + 6 * 300);

    // One epoch at a time and three in flight give the same.
    for in_flight in ["1", "3"] {
        let threads = tmp.path().join(format!("threads-{in_flight}"));
        let args = [
            "--workers",
            "2",
            "--shards-per-epoch",
            "2",
            "--epochs-in-flight",
            in_flight,
            FILTERS[0],
            FILTERS[1],
        ];
        run_xinst(i, threads.to_str().unwrap(), &args, 0);
        assert!(read_rows(&threads) == expected, "2 workers, {in_flight} epochs in flight differ from 1");

        let hostfile = tmp.path().join("hosts.txt");
        std::fs::write(&hostfile, format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port())).unwrap();
        let cluster = tmp.path().join(format!("cluster-{in_flight}"));
        let spawn = |p: usize| {
            xinst()
                .args(["run", "--no-progress", "--input", i, "--output", cluster.to_str().unwrap()])
                .args([
                    "--processes",
                    "2",
                    "--process",
                    &p.to_string(),
                    "--hostfile",
                    hostfile.to_str().unwrap(),
                ])
                .args(["--shards-per-epoch", "2", "--epochs-in-flight", in_flight])
                .args(FILTERS)
                .output()
        };
        let (p0, p1) = std::thread::scope(|s| {
            let a = s.spawn(|| spawn(0));
            let b = s.spawn(|| spawn(1));
            (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
        });
        assert!(p0.status.success(), "process 0: {}", String::from_utf8_lossy(&p0.stderr));
        assert!(p1.status.success(), "process 1: {}", String::from_utf8_lossy(&p1.stderr));
        assert!(read_rows(&cluster) == expected, "2 processes, {in_flight} epochs in flight differ from 1");
        assert_eq!(read_rejects(&cluster), read_rejects(&single));
        let stderr = String::from_utf8_lossy(&p0.stderr);
        assert!(stderr.contains("workers: 2"), "{stderr}");
        assert!(stderr.contains("epochs: 1..=6"), "{stderr}");
    }
}
