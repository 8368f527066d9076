//! Settings are part of the dataset's state: a rerun with a changed setting redoes the shards
//! it touches and ends with the dataset a fresh run with the new settings makes, calling the
//! model only for prompts that changed (the memo answers the rest).

use crate::common::*;
use crate::filters::documents;
use std::path::Path;

/// Everything a run commits that settings decide: documents, pairs, rejects, the corpus.
#[derive(Debug, PartialEq)]
struct Snapshot {
    rows: Vec<Row>,
    pairs: Vec<PairRow>,
    rejects: Vec<(String, u64, String)>,
    corpus: Vec<Row>,
}

fn snapshot(out: &Path) -> Snapshot {
    Snapshot { rows: read_rows(out), pairs: pairs(out), rejects: read_rejects(out), corpus: read_corpus(out) }
}

fn plan(input: &str, output: &str, extra: &[&str]) -> String {
    let out =
        xinst().args(["run", "--plan", "--input", input, "--output", output]).args(extra).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn a_changed_filter_setting_or_chain_redoes_the_shards_and_equals_a_fresh_run() {
    let tmp = tempdir();
    let input = tmp.path().join("in");
    copy_sample(&input);
    let i = input.to_str().unwrap();
    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();
    let cfg = tmp.path().join("x.toml");
    let with = |extra: &[&'static str], cfg: &Path| -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        v.extend(["--config".to_string(), cfg.display().to_string()]);
        v
    };
    std::fs::write(&cfg, "").unwrap();
    let args = with(&FILTERS, &cfg);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_xinst(i, o, &args, 0);
    let before = snapshot(&out);
    assert!(plan(i, o, &args).contains("nothing to do"));

    // A stricter length filter: every shard is redone, and nothing is left of the old rows.
    std::fs::write(&cfg, "[quality.length]\nmin_chars = 1200\n").unwrap();
    let planned = plan(i, o, &args);
    assert!(planned.contains("5 with changed settings"), "{planned}");
    assert!(planned.contains("redo 5 shards from quality: length.min_chars 200 -> 1200"), "{planned}");
    let (run, s) = run_xinst(i, o, &args, 0);
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("redo 5 shards from quality"),
        "the run says it too"
    );
    assert_eq!((s["shards_redone"].as_u64(), s["shards_processed"].as_u64()), (Some(5), Some(5)), "{s}");
    let fresh = tmp.path().join("fresh");
    run_xinst(i, fresh.to_str().unwrap(), &args, 0);
    let after = snapshot(&out);
    assert!(after.rows.len() < before.rows.len(), "the threshold removes documents");
    assert_eq!(after, snapshot(&fresh));
    assert!(plan(i, o, &args).contains("nothing to do"), "and the rerun is current");

    // The chain: without quality, the length filter's rejects come back as documents.
    let mut skip = args.clone();
    skip[1] = "reverse_instruction,cross_check,evaluate,refine,quality";
    let planned = plan(i, o, &skip);
    assert!(
        planned.contains("from pipeline: operators read,normalize,lang_id,quality,dedup -> "),
        "{planned}"
    );
    run_xinst(i, o, &skip, 0);
    let fresh = tmp.path().join("fresh-skip");
    run_xinst(i, fresh.to_str().unwrap(), &skip, 0);
    let skipped = snapshot(&out);
    assert!(skipped.rows.len() > before.rows.len());
    assert_eq!(skipped, snapshot(&fresh));

    // Back to the first settings: the first dataset again.
    std::fs::write(&cfg, "").unwrap();
    run_xinst(i, o, &args, 0);
    assert_eq!(snapshot(&out), before);
}

/// Six real documents in six languages, three to a shard.
fn corpus(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (shard, codes) in [["swh", "fin", "hin"], ["tur", "vie", "tha"]].iter().enumerate() {
        let lines: Vec<String> = codes
            .iter()
            .map(|code| {
                serde_json::json!({"id": format!("doc-{code}"), "text": documents(code).remove(3)})
                    .to_string()
            })
            .collect();
        std::fs::write(dir.join(format!("udhr-{shard}.jsonl")), lines.join("\n") + "\n").unwrap();
    }
}

#[test]
fn model_settings_redo_only_the_model_calls_whose_prompts_changed() {
    let served = crate::generate::serve();
    let tmp = tempdir();
    let input = tmp.path().join("in");
    corpus(&input);
    let i = input.to_str().unwrap();
    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();
    let cfg = tmp.path().join("x.toml");
    let cfg_arg = ["--config", cfg.to_str().unwrap()];
    // One memo for every run: a fresh run with the same settings calls no model, so its
    // dataset is the reference for the rerun's at no cost.
    let memo = tmp.path().join("memo.redb");
    let base = format!(
        "[instruct]\nmemo_path = {:?}\n[reverse_instruction]\ntemplate = \"fewshot\"\nsample_rate = 0.5\n",
        memo.display().to_string()
    );
    let set = |extra: &str| std::fs::write(&cfg, format!("{base}{extra}")).unwrap();
    let mut fresh_runs = 0;
    let mut equals_fresh = |extra: &[&str]| {
        fresh_runs += 1;
        let fresh = tmp.path().join(format!("fresh-{fresh_runs}"));
        let args: Vec<&str> = cfg_arg.iter().chain(extra).copied().collect();
        let (_, s) = run_xinst(i, fresh.to_str().unwrap(), &args, 0);
        assert_eq!(calls(&s), 0, "the memo answers a fresh run with the same settings: {}", s["operators"]);
        assert_eq!(snapshot(&out), snapshot(&fresh));
    };

    set("");
    let (_, s0) = run_xinst(i, o, &cfg_arg, 0);
    let first = snapshot(&out);
    let unsampled = first.corpus.len() as u64;
    assert!(unsampled > 0 && unsampled < 6, "sample_rate 0.5 keeps some documents as the corpus: {first:?}");
    assert_eq!(counter(&s0, "reverse_instruction", "corpus"), unsampled);
    assert!(first.rejects.iter().all(|(_, _, r)| r != "instruct_not_sampled"), "{:?}", first.rejects);

    // The sample rate: only the newly sampled documents get instructions.
    let rate = ["--sample-rate", "1"];
    let args: Vec<&str> = cfg_arg.iter().chain(&rate).copied().collect();
    assert!(plan(i, o, &args).contains("from reverse_instruction: sample_rate 0.5 -> 1.0"));
    let (_, s) = run_xinst(i, o, &args, 0);
    assert_eq!(s["shards_redone"], 2, "{s}");
    assert_eq!(counter(&s, "reverse_instruction", "model_calls"), unsampled, "{}", s["operators"]);
    assert!(snapshot(&out).corpus.is_empty());
    equals_fresh(&rate);
    let all = snapshot(&out);

    // A filter threshold: filter time only, no model call.
    let mut lengths: Vec<usize> = all.pairs.iter().map(|p| p.text.chars().count()).collect();
    lengths.sort_unstable();
    let min = lengths[lengths.len() / 2];
    set(&format!("[quality.length]\nmin_chars = {min}\n"));
    let (_, s) = run_xinst(i, o, &args, 0);
    assert_eq!(calls(&s), 0, "{}", s["operators"]);
    assert!(snapshot(&out).pairs.len() < all.pairs.len());
    equals_fresh(&rate);
    set("");
    run_xinst(i, o, &args, 0);
    assert_eq!(snapshot(&out), all);

    // --skip refine: the chain is shorter; no prompt changed.
    let skip = ["--sample-rate", "1", "--skip", "refine"];
    let args_skip: Vec<&str> = cfg_arg.iter().chain(&skip).copied().collect();
    let (_, s) = run_xinst(i, o, &args_skip, 0);
    assert_eq!((s["shards_redone"].as_u64(), calls(&s)), (Some(2), 0), "{}", s["operators"]);
    equals_fresh(&skip);

    // A new evaluator template version: evaluation (and what follows) runs again, the
    // reverse instructions come from the memo.
    set(&format!(
        "[evaluate]\ntemplate = {{ id = \"evaluate.mine\", version = 2, text = {:?} }}\n",
        xinstruct_operators::instruct::prompt::EVALUATE_FEWSHOT,
    ));
    assert!(plan(i, o, &args).contains("from evaluate: template"));
    let (_, s) = run_xinst(i, o, &args, 0);
    assert_eq!(counter(&s, "reverse_instruction", "model_calls"), 0);
    let evaluated = s["operators"]["evaluate"]["docs_in"].as_u64().unwrap();
    assert!(evaluated > 0 && counter(&s, "evaluate", "model_calls") == evaluated, "{}", s["operators"]);
    assert!(snapshot(&out).pairs.iter().all(|p| p.prompt_version.contains("evaluate.mine@2")));
    equals_fresh(&rate);

    // The generator: the same weights named by their path are the same model (nothing to
    // do); a server is another generator (its answers are not the engine's memo entries).
    set("");
    run_xinst(i, o, &args, 0);
    let gguf = xinstruct::models::resolve("gemma-3-270m").unwrap();
    let by_path = format!(
        "[instruct]\ngenerator = {:?}\nmemo_path = {:?}\n[reverse_instruction]\ntemplate = \"fewshot\"\n",
        gguf.display().to_string(),
        memo.display().to_string()
    );
    std::fs::write(&cfg, &by_path).unwrap();
    assert!(plan(i, o, &args).contains("nothing to do"), "{}", plan(i, o, &args));
    let by_url = by_path.replace(&format!("{:?}", gguf.display().to_string()), &format!("{:?}", served.url))
        + "[openai]\nmodel = \"gemma-3-270m\"\n";
    std::fs::write(&cfg, &by_url).unwrap();
    let planned = plan(i, o, &args);
    assert!(planned.contains("from reverse_instruction: model.generator candle:"), "{planned}");
    let (_, s) = run_xinst(i, o, &args, 0);
    assert!(counter(&s, "reverse_instruction", "model_calls") > 0, "{}", s["operators"]);
    assert!(snapshot(&out)
        .pairs
        .iter()
        .all(|p| p.prompt_version.starts_with("reverse_instruction.fewshot@1")));
    equals_fresh(&rate);
}
