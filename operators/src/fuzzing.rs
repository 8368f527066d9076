//! The properties the fuzz targets check (`fuzz/`, nightly `cargo fuzz`), one function per
//! target, so the same checks also run on stable as a smoke test over mutated seeds
//! (`operators/tests/fuzz_smoke.rs`, in CI). Each panics on a violation.

use crate::instruct::prompt::{neutralize, neutralize_with, Specials, Template};
use crate::instruct::verdict::parse_evaluation;
use crate::source::read::SourceConfig;
use crate::source::{Compression, Format, Record, ShardTask};
use std::io::Write;

/// Any bytes as a shard of `format`: read to the end without a panic or a hang; every
/// document has an id.
pub fn read_shard(data: &[u8], format: Format) {
    let ext = match format {
        Format::Jsonl => "jsonl",
        Format::Parquet => "parquet",
        Format::Wet => "warc.wet",
    };
    let path = std::env::temp_dir().join(format!(
        "xinst-fuzz-{}-{:?}.{ext}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::File::create(&path).and_then(|mut f| f.write_all(data)).expect("temp file");
    let task = ShardTask {
        uri: path.display().to_string(),
        format,
        compression: Compression::None,
        size: data.len() as u64,
        version: String::new(),
        born: None,
    };
    let cfg = SourceConfig::default();
    let records = match format {
        Format::Jsonl => crate::source::jsonl::records(&path, &task, &cfg, None),
        Format::Parquet => crate::source::parquet::records(&path, &task, &cfg, None),
        Format::Wet => crate::source::wet::records(&path, &task, &cfg, None),
    };
    if let Ok(records) = records {
        for r in records.take(100_000) {
            if let Record::Doc(d) = r {
                assert!(!d.id.is_empty(), "a document without an id");
            }
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// Any text: neutralizing never panics, is idempotent, leaves no `###` line, and defuses the
/// tokenizer's tokens.
pub fn neutralize_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (once, _) = neutralize(text);
    assert_eq!(neutralize(&once).0, once, "idempotent");
    assert!(once.split('\n').all(|l| !l.trim_start().starts_with("###")), "{once:?}");
    let specials =
        Specials::new(["<image_soft_token>".to_string(), "<start_of_turn>".into(), "[INST]".into()]);
    let (with, _) = neutralize_with(text, &specials);
    assert!(!with.contains("<image_soft_token>") && !with.contains("<start_of_turn>"), "{with:?}");
}

/// Any template text and value (split at a NUL): rendering never panics, and a template
/// without slots renders as itself.
pub fn render_template(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let (template, value) = s.split_once('\u{0}').unwrap_or((s, "{text}"));
    let t = Template::new("fuzz", 1, template);
    let _ = t.slots();
    let out = t.render(&[("text", value), ("instruction", value), ("language", "Finnish")]);
    if !template.contains('{') {
        assert_eq!(out, template);
    }
}

/// Any judge answer: the parser never panics, and a score it reads is 1–5.
pub fn parse_verdict(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let e = parse_evaluation(raw);
    if let Some(score) = e.score {
        assert!((1..=5).contains(&score), "{score} from {raw:?}");
    }
}
