//! The command line: help, config and argument errors.

use crate::common::*;

#[test]
fn help_shows_examples_and_exit_codes() {
    let out = xinst().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for needle in ["xinst demo", "xinst watch", "--hostfile", "Exit codes", "await the", "AWS_ENDPOINT_URL"] {
        assert!(text.contains(needle), "--help lacks {needle}:\n{text}");
    }
}

#[test]
fn default_config_round_trips_and_bad_config_names_the_key() {
    let out = xinst().args(["config", "--print-default"]).output().unwrap();
    assert!(out.status.success());
    let tmp = tempdir();
    let cfg = tmp.path().join("x.toml");
    std::fs::write(&cfg, &out.stdout).unwrap();
    let checked = xinst().args(["config", "--check"]).arg(&cfg).output().unwrap();
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));

    std::fs::write(&cfg, "[source]\ntext_feild = \"body\"\n").unwrap();
    let out = xinst()
        .args(["run", "--input", sample_dir().to_str().unwrap(), "--output"])
        .arg(tmp.path().join("o"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("text_feild") && err.contains("x.toml"), "{err}");
}

#[test]
fn config_text_field_is_used() {
    let tmp = tempdir();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("a.jsonl"), "{\"body\":\"from body\",\"text\":\"not this\"}\n").unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "[source]\ntext_field = \"body\"\n").unwrap();
    let out = tmp.path().join("out");
    run_xinst(
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        &["--config", cfg.to_str().unwrap(), RAW[0], RAW[1]],
        0,
    );
    let rows = read_rows(&out);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].text, "from body");
}

#[test]
fn unknown_skip_and_missing_input_are_clear_errors() {
    let tmp = tempdir();
    let out = xinst()
        .args(["run", "--input", sample_dir().to_str().unwrap(), "--output"])
        .arg(tmp.path().join("o"))
        .args(["--skip", "dedupe"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap refuses an unknown operator");
    assert!(String::from_utf8_lossy(&out.stderr).contains("dedupe"));
    let out = xinst()
        .args(["run", "--input", "/nonexistent/crawl", "--output"])
        .arg(tmp.path().join("o"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/crawl"));
}

/// The demo end to end with the real models on a sample of the bundled crawl: pairs with
/// labels and iterations in the dataset, every sampled document accounted for, and a second
/// run that finds nothing new.
#[test]
fn demo_writes_pairs_and_a_second_run_processes_nothing() {
    let tmp = tempdir();
    let dir = tmp.path().join("demo");
    let stats = tmp.path().join("stats.json");
    let run = || {
        xinst()
            .args(["demo", "--no-progress", "--sample-rate", "0.08", "--stats-json"])
            .arg(&stats)
            .arg("--output")
            .arg(&dir)
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let files = files_under(&dir.join("dataset"));
    assert!(files.iter().any(|f| f.starts_with("rejects/part-")));
    assert!(files.iter().any(|f| f.starts_with("stats/run-") && f.ends_with(".json")));
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    let op = |name: &str, field: &str| s["operators"][name][field].as_u64().unwrap_or(0);
    let counter = |name: &str, c: &str| s["operators"][name]["counters"][c].as_u64().unwrap_or(0);
    let sampled = counter("reverse_instruction", "model_calls");
    assert!(sampled >= 5, "{sampled} documents sampled: {s}");
    assert_eq!(counter("reverse_instruction", "no_prompt"), op("reverse_instruction", "docs_in") - sampled);
    assert_eq!(counter("evaluate", "model_calls"), op("evaluate", "docs_in"));
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(stderr.contains("model stage") && stderr.contains("memo miss"), "{stderr}");
    let pairs = pairs(&dir.join("dataset"));
    assert!(!pairs.is_empty(), "no pair survived: {stderr}");
    assert_eq!(pairs.len() as u64, s["docs_out"].as_u64().unwrap());
    for p in &pairs {
        assert!(p.instruction.chars().count() >= 10, "{p:?}");
        assert!(["good"].contains(&p.label.as_str()), "rejected labels are not kept by default: {p:?}");
        assert!(p.iteration <= 2 && p.tokens_in > 0 && p.tokens_out > 0, "{p:?}");
        // The demo's reverse prompt is the few-shot one (what its 270M base model does best with).
        assert!(p.prompt_version.contains("reverse_instruction.fewshot@1 evaluate.fewshot@2"), "{p:?}");
        assert_eq!(p.instruction_lang, "en_Latn");
    }
    let second = run();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("5 unchanged") && err.contains("0 processed"), "{err}");
}
