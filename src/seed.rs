//! `xinst seed`: the paper's seed step. An English instruction dataset whose responses the
//! user has in the target language (e.g. machine translations of the responses) becomes
//! response → instruction training data: each example's prompt is the reverse-instruction
//! template filled with the target-language response, its answer the English instruction.
//! A generator fine-tuned on it with a standard trainer (LLaMA-Factory, TRL) is plugged back
//! in as `[instruct] generator` (docs/instruct.md).

use crate::export::{dataset_info_entry, write_dataset_info, ExportFormat};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use xinstruct_operators::instruct::prompt::{neutralize, Template};

#[derive(Clone, Debug)]
pub struct SeedOptions {
    pub input: PathBuf,
    pub out: PathBuf,
    pub instruction_field: String,
    pub response_field: String,
    /// The reverse-instruction template the generator will be prompted with in the pipeline.
    pub template: Template,
    pub name: String,
}

#[derive(Debug, Default)]
pub struct Seeded {
    pub rows: u64,
    pub rejects: u64,
    pub rejects_file: Option<PathBuf>,
    pub dataset_info: PathBuf,
}

/// The training example for one (instruction, response) pair.
pub fn example(template: &Template, instruction: &str, response: &str) -> Value {
    let (text, _) = neutralize(response.trim());
    json!({
        "instruction": template.render(&[("text", &text), ("language", "the response's language")]),
        "input": "",
        "output": instruction.trim(),
    })
}

pub fn seed(opts: &SeedOptions) -> Result<Seeded> {
    let file =
        std::fs::File::open(&opts.input).with_context(|| format!("opening {}", opts.input.display()))?;
    if let Some(dir) = opts.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = opts.out.with_extension("partial");
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
    );
    let rejects_path = opts.out.with_extension("rejects.jsonl");
    let mut rejects: Vec<Value> = Vec::new();
    let mut done = Seeded::default();
    let input = opts.input.display().to_string();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{input}: reading line {}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let mut reject = |reason: &str, detail: String| {
            rejects.push(json!({"file": input, "line": n + 1, "reason": reason, "detail": detail}));
        };
        let v: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                reject("invalid_json", e.to_string());
                continue;
            }
        };
        let field = |name: &str| v.get(name).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let (Some(instruction), Some(response)) =
            (field(&opts.instruction_field), field(&opts.response_field))
        else {
            reject(
                "missing_field",
                format!(
                    "needs non-empty string fields '{}' and '{}'",
                    opts.instruction_field, opts.response_field
                ),
            );
            continue;
        };
        serde_json::to_writer(&mut w, &example(&opts.template, instruction, response))?;
        w.write_all(b"\n")?;
        done.rows += 1;
    }
    w.flush()?;
    drop(w);
    std::fs::rename(&tmp, &opts.out).with_context(|| format!("writing {}", opts.out.display()))?;
    done.rejects = rejects.len() as u64;
    if !rejects.is_empty() {
        let text: String = rejects.iter().map(|r| format!("{r}\n")).collect();
        std::fs::write(&rejects_path, text).with_context(|| format!("writing {}", rejects_path.display()))?;
        done.rejects_file = Some(rejects_path);
    }
    let file_name = opts.out.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
    done.dataset_info = write_dataset_info(
        Path::new(&opts.out),
        &opts.name,
        dataset_info_entry(&file_name, ExportFormat::Alpaca),
    )?;
    Ok(done)
}
