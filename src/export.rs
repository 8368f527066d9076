//! `xinst export`: the dataset's pairs as training files — Alpaca, ShareGPT or flat JSON
//! Lines — with the paper's "Answer in {Language}." appended to each instruction, and the
//! `dataset_info.json` entry LLaMA-Factory reads (one per name and format: `xinstruct_alpaca`,
//! `xinstruct_sharegpt`, so several exports share one folder), and an axolotl `datasets:`
//! snippet beside the file (`<file>.axolotl.yaml`). Every format is JSON Lines, which HF
//! `datasets.load_dataset("json", …)`, LLaMA-Factory and axolotl load.

use crate::sql::SqlSession;
use anyhow::{Context, Result};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{UInt32Type, UInt8Type};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use xinstruct_operators::lang_id::codes::LangCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// `{"instruction", "input", "output"}` per line.
    Alpaca,
    /// `{"conversations": [{"from": "human", …}, {"from": "gpt", …}]}` per line.
    Sharegpt,
    /// Every column of the pair, flat, with the response as `output`.
    Jsonl,
}

#[derive(Clone, Debug)]
pub struct ExportOptions {
    pub format: ExportFormat,
    pub out: PathBuf,
    /// Appended to each instruction after a space; `{language}` is the English language name.
    /// Empty: nothing appended.
    pub suffix: String,
    /// Labels to export; empty = every pair in the dataset (the pipeline already dropped bad
    /// and unknown ones unless configured to keep them).
    pub labels: Vec<String>,
    /// Leave out pairs flagged as translation requests.
    pub drop_translate: bool,
    /// The dataset's name; its `dataset_info.json` entry is `<name>_<format>`.
    pub name: String,
    /// Only the pairs `xinst diversify` selected, in its order per language.
    pub selected: bool,
}

/// What an export wrote.
#[derive(Debug, Default)]
pub struct Exported {
    pub rows: u64,
    pub by_lang: BTreeMap<String, u64>,
    pub dataset_info: PathBuf,
    /// The entry's name in it.
    pub entry: String,
    pub axolotl: PathBuf,
}

struct Row {
    id: String,
    lang: String,
    instruction: String,
    output: String,
    label: Option<String>,
    score: Option<u8>,
    iteration: Option<u32>,
    url: Option<String>,
    translate: bool,
}

/// The instruction as training data shows it: with the suffix for the row's language.
pub fn with_suffix(instruction: &str, lang: &str, suffix: &str) -> String {
    if suffix.is_empty() {
        return instruction.to_string();
    }
    let name = LangCode::parse(lang).map(|c| c.name().to_string()).unwrap_or_else(|| lang.to_string());
    format!("{} {}", instruction.trim_end(), suffix.replace("{language}", &name))
}

fn record(row: &Row, format: ExportFormat, suffix: &str) -> Value {
    let instruction = with_suffix(&row.instruction, &row.lang, suffix);
    match format {
        ExportFormat::Alpaca => json!({
            "instruction": instruction, "input": "", "output": row.output,
            "id": row.id, "lang": row.lang,
        }),
        ExportFormat::Sharegpt => json!({
            "conversations": [
                {"from": "human", "value": instruction},
                {"from": "gpt", "value": row.output},
            ],
            "id": row.id, "lang": row.lang,
        }),
        ExportFormat::Jsonl => json!({
            "id": row.id, "lang": row.lang, "instruction": instruction, "output": row.output,
            "label": row.label, "score": row.score, "iteration": row.iteration, "url": row.url,
            "translate": row.translate,
        }),
    }
}

/// The LLaMA-Factory `dataset_info.json` entry for an exported file.
pub fn dataset_info_entry(file_name: &str, format: ExportFormat) -> Value {
    match format {
        ExportFormat::Alpaca => json!({
            "file_name": file_name,
            "columns": {"prompt": "instruction", "query": "input", "response": "output"},
        }),
        ExportFormat::Sharegpt => json!({
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "conversations"},
            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"},
        }),
        ExportFormat::Jsonl => json!({
            "file_name": file_name,
            "columns": {"prompt": "instruction", "response": "output"},
        }),
    }
}

/// The axolotl `datasets:` entry for an exported file (YAML).
pub fn axolotl_snippet(path: &str, format: ExportFormat) -> String {
    let path = serde_json::to_string(path).unwrap_or_default();
    let body = match format {
        // The flat format carries `instruction` and `output` too, which axolotl's alpaca reads.
        ExportFormat::Alpaca | ExportFormat::Jsonl => "    type: alpaca\n".to_string(),
        ExportFormat::Sharegpt => "    type: chat_template\n    field_messages: conversations\n    message_property_mappings:\n      role: from\n      content: value\n    roles:\n      user: [\"human\"]\n      assistant: [\"gpt\"]\n".to_string(),
    };
    format!("# axolotl: paste under your config's `datasets:` (written by xinst export)\ndatasets:\n  - path: {path}\n    ds_type: json\n{body}")
}

/// Adds (or replaces) `name` in the `dataset_info.json` beside `out`, keeping other entries.
pub fn write_dataset_info(out: &Path, name: &str, entry: Value) -> Result<PathBuf> {
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let path = dir.join("dataset_info.json");
    let mut info: Map<String, Value> = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a JSON object; move it away or fix it", path.display()))?,
        Err(_) => Map::new(),
    };
    info.insert(name.to_string(), entry);
    std::fs::write(&path, serde_json::to_string_pretty(&Value::Object(info))? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub async fn export(session: &SqlSession, opts: &ExportOptions) -> Result<Exported> {
    // Always qualified by the pairs table's alias `p`, so the same filter serves both queries.
    let mut filter = String::from("p.instruction IS NOT NULL");
    if !opts.labels.is_empty() {
        let labels: Vec<String> = opts.labels.iter().map(|l| quote(l)).collect();
        filter.push_str(&format!(" AND p.label IN ({})", labels.join(", ")));
    }
    if opts.drop_translate {
        filter.push_str(" AND (p.translate IS NULL OR NOT p.translate)");
    }
    let (join, order) = if opts.selected {
        ("JOIN diversity d ON p.id = d.id AND p.lang = d.lang AND d.selected", "p.lang, d.rank")
    } else {
        ("", "p.lang, p.id")
    };
    let sql = format!(
        "SELECT p.id, p.lang, p.instruction, p.text, p.label, p.score, p.iteration, p.url, p.translate \
         FROM pairs p {join} WHERE {filter} ORDER BY {order}"
    );
    let batches = session.query(&sql).await?;
    if let Some(dir) = opts.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = opts.out.with_extension("partial");
    let file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let mut done = Exported::default();
    for b in &batches {
        // DataFusion may hand strings as views or dictionaries: read every one as plain Utf8.
        let cast = |i: usize| arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Utf8);
        let (id, lang, instruction, text, label, url) =
            (cast(0)?, cast(1)?, cast(2)?, cast(3)?, cast(4)?, cast(7)?);
        let (id, lang, instruction, text, label, url) = (
            id.as_string::<i32>(),
            lang.as_string::<i32>(),
            instruction.as_string::<i32>(),
            text.as_string::<i32>(),
            label.as_string::<i32>(),
            url.as_string::<i32>(),
        );
        let score = b.column(5).as_primitive::<UInt8Type>();
        let iteration = b.column(6).as_primitive::<UInt32Type>();
        let translate = b.column(8).as_boolean();
        for r in 0..b.num_rows() {
            let opt = |a: &arrow::array::StringArray| (!a.is_null(r)).then(|| a.value(r).to_string());
            let row = Row {
                id: id.value(r).to_string(),
                lang: lang.value(r).to_string(),
                instruction: instruction.value(r).to_string(),
                output: text.value(r).to_string(),
                label: opt(label),
                score: (!score.is_null(r)).then(|| score.value(r)),
                iteration: (!iteration.is_null(r)).then(|| iteration.value(r)),
                url: opt(url),
                translate: !translate.is_null(r) && translate.value(r),
            };
            serde_json::to_writer(&mut w, &record(&row, opts.format, &opts.suffix))?;
            w.write_all(b"\n")?;
            done.rows += 1;
            *done.by_lang.entry(row.lang).or_default() += 1;
        }
    }
    w.flush()?;
    drop(w);
    std::fs::rename(&tmp, &opts.out).with_context(|| format!("writing {}", opts.out.display()))?;
    let file_name = opts.out.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
    // The format as the command line spells it (`--format sharegpt`).
    let format = clap::ValueEnum::to_possible_value(&opts.format).map(|v| v.get_name().to_string());
    done.entry = format!("{}_{}", opts.name, format.unwrap_or_default());
    done.dataset_info =
        write_dataset_info(&opts.out, &done.entry, dataset_info_entry(&file_name, opts.format))?;
    let mut axolotl = opts.out.clone().into_os_string();
    axolotl.push(".axolotl.yaml");
    done.axolotl = PathBuf::from(axolotl);
    std::fs::write(&done.axolotl, axolotl_snippet(&opts.out.display().to_string(), opts.format))
        .with_context(|| format!("writing {}", done.axolotl.display()))?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suffix_names_the_language() {
        assert_eq!(
            with_suffix("Explain the right to rest.", "sw_Latn", "Answer in {language}."),
            "Explain the right to rest. Answer in Swahili."
        );
        assert_eq!(with_suffix("Why? ", "hi", "Answer in {language}."), "Why? Answer in Hindi.");
        assert_eq!(with_suffix("Why?", "hi", ""), "Why?");
    }

    #[test]
    fn axolotl_snippets_name_the_file_and_format() {
        assert_eq!(
            axolotl_snippet("train/a.jsonl", ExportFormat::Alpaca),
            "# axolotl: paste under your config's `datasets:` (written by xinst export)\ndatasets:\n  - path: \"train/a.jsonl\"\n    ds_type: json\n    type: alpaca\n"
        );
        let s = axolotl_snippet("s.jsonl", ExportFormat::Sharegpt);
        assert!(s.contains("type: chat_template\n    field_messages: conversations\n"), "{s}");
        assert!(s.contains("user: [\"human\"]") && s.contains("assistant: [\"gpt\"]"), "{s}");
    }
}
