//! JSONL shards (plain, gzip, zstd): one JSON object per line, CulturaX / mC4 / FineWeb fields.
//!
//! Holds one line in memory at a time; a line longer than `max_doc_bytes` is skipped in
//! streaming fashion (never buffered whole) and rejected as `doc_too_large`.

use super::{io_reason, Compression, CountingRead, Progress, Record, ShardTask};
use crate::doc::{Origin, Reject};
use crate::source::read::{ReadError, SourceConfig};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

const OP: &str = "read";

/// Opens a JSONL shard and returns its records.
pub fn records(
    path: &Path,
    task: &ShardTask,
    cfg: &SourceConfig,
    progress: Option<Arc<Progress>>,
) -> Result<Box<dyn Iterator<Item = Record>>, ReadError> {
    let file =
        File::open(path).map_err(|e| ReadError::new("io_error", format!("open {}: {e}", path.display())))?;
    let raw = CountingRead::new(BufReader::with_capacity(1 << 16, file), progress);
    let decoded: Box<dyn Read> = match task.compression {
        Compression::None => Box::new(raw),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(raw)
                .map_err(|e| ReadError::new("corrupt_stream", format!("zstd header: {e}")))?,
        ),
    };
    Ok(Box::new(JsonlRecords {
        reader: BufReader::with_capacity(1 << 16, decoded),
        shard: task.uri.clone(),
        cfg: cfg.clone(),
        line_no: 0,
        line: Vec::new(),
        done: false,
    }))
}

struct JsonlRecords {
    reader: BufReader<Box<dyn Read>>,
    shard: String,
    cfg: SourceConfig,
    line_no: u64,
    line: Vec<u8>,
    done: bool,
}

impl Iterator for JsonlRecords {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        while !self.done {
            let offset = self.line_no;
            let origin = Origin { shard: self.shard.clone(), offset };
            self.line.clear();
            match read_line_capped(&mut self.reader, &mut self.line, self.cfg.max_doc_bytes) {
                Ok(LineRead::Eof) => {
                    self.done = true;
                    return None;
                }
                Ok(LineRead::TooLong(len)) => {
                    self.line_no += 1;
                    return Some(Record::Reject(Reject::new(
                        origin,
                        OP,
                        "doc_too_large",
                        format!(
                            "line is {len} bytes, over source.max_doc_bytes = {}",
                            self.cfg.max_doc_bytes
                        ),
                        None,
                    )));
                }
                Ok(LineRead::Line) => {
                    self.line_no += 1;
                    if self.line.iter().all(|b| b.is_ascii_whitespace()) {
                        continue;
                    }
                    return Some(parse_line(&self.line, origin, &self.cfg));
                }
                Err(e) => {
                    self.done = true;
                    return Some(Record::FileError(Reject::new(
                        origin,
                        OP,
                        io_reason(&e),
                        format!("reading line {offset}: {e}"),
                        None,
                    )));
                }
            }
        }
        None
    }
}

enum LineRead {
    Eof,
    Line,
    /// The line exceeded the cap; its length in bytes (it was consumed, not kept).
    TooLong(u64),
}

/// Reads one line (without the newline) into `buf`, keeping at most `cap` bytes in memory.
fn read_line_capped(r: &mut impl BufRead, buf: &mut Vec<u8>, cap: u64) -> std::io::Result<LineRead> {
    let mut total: u64 = 0;
    let mut saw_any = false;
    loop {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            return Ok(match (saw_any, total > cap) {
                (false, _) => LineRead::Eof,
                (true, true) => LineRead::TooLong(total),
                (true, false) => LineRead::Line,
            });
        }
        saw_any = true;
        let (take, end) = match memchr_newline(chunk) {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        total += take as u64;
        if total <= cap {
            buf.extend_from_slice(&chunk[..take]);
        } else if !buf.is_empty() {
            buf.clear();
            buf.shrink_to(1 << 16);
        }
        r.consume(if end { take + 1 } else { take });
        if end {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(if total > cap { LineRead::TooLong(total) } else { LineRead::Line });
        }
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

fn parse_line(line: &[u8], origin: Origin, cfg: &SourceConfig) -> Record {
    let text = match std::str::from_utf8(line) {
        Ok(t) => t,
        Err(e) => {
            return Record::Reject(Reject::new(
                origin,
                OP,
                "invalid_utf8",
                format!("invalid UTF-8 at byte {} of the line", e.valid_up_to()),
                None,
            ))
        }
    };
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return Record::Reject(Reject::new(origin, OP, "invalid_json", e.to_string(), None)),
    };
    let serde_json::Value::Object(mut fields) = value else {
        return Record::Reject(Reject::new(
            origin,
            OP,
            "invalid_json",
            "line is valid JSON but not an object",
            None,
        ));
    };
    let id = fields.remove(&cfg.id_field).and_then(scalar_string);
    let text = match fields.remove(&cfg.text_field) {
        Some(serde_json::Value::String(s)) => s,
        Some(other) => {
            return Record::Reject(Reject::new(
                origin,
                OP,
                "missing_text",
                format!("field '{}' is not a string: {}", cfg.text_field, kind(&other)),
                id,
            ))
        }
        None => {
            return Record::Reject(Reject::new(
                origin,
                OP,
                "missing_text",
                format!("no field '{}'", cfg.text_field),
                id,
            ))
        }
    };
    let url = fields.remove(&cfg.url_field).and_then(scalar_string);
    let lang = cfg.lang_field.as_ref().and_then(|f| fields.remove(f)).and_then(scalar_string);
    let mut meta = BTreeMap::new();
    for name in &cfg.meta_fields {
        if let Some(v) = fields.remove(name).and_then(scalar_string) {
            meta.insert(name.clone(), v);
        }
    }
    cfg.finish_doc(id, text, url, lang, meta, origin)
}

fn scalar_string(v: serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Format;
    use std::io::Write;

    fn task(path: &Path, compression: Compression) -> ShardTask {
        ShardTask {
            uri: path.display().to_string(),
            format: Format::Jsonl,
            compression,
            size: 0,
            version: String::new(),
            born: None,
        }
    }

    fn read_all(bytes: &[u8], compression: Compression) -> Vec<Record> {
        let dir = std::env::temp_dir().join(format!("xinst-jsonl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("t-{}.jsonl", xxhash_rust::xxh3::xxh3_64(bytes)));
        std::fs::write(&path, bytes).unwrap();
        let cfg = SourceConfig::default();
        records(&path, &task(&path, compression), &cfg, None).unwrap().collect()
    }

    #[test]
    fn reads_fields_and_rejects_bad_lines() {
        let input = b"{\"text\":\"hello\",\"url\":\"http://a\",\"timestamp\":\"2020\",\"id\":\"x1\"}\n\
            {not json}\n\
            \n\
            {\"url\":\"http://b\"}\n\
            {\"text\":\"caf\xff\"}\n\
            {\"text\":\"second\"}";
        let recs = read_all(input, Compression::None);
        let reasons: Vec<String> = recs
            .iter()
            .map(|r| match r {
                Record::Doc(d) => format!("doc:{}@{}", d.text, d.source.offset),
                Record::Reject(r) => format!("reject:{}@{}", r.reason, r.origin.offset),
                Record::FileError(r) => format!("file:{}", r.reason),
            })
            .collect();
        assert_eq!(
            reasons,
            vec![
                "doc:hello@0",
                "reject:invalid_json@1",
                "reject:missing_text@3",
                "reject:invalid_utf8@4",
                "doc:second@5"
            ]
        );
        let Record::Doc(first) = &recs[0] else { unreachable!() };
        assert_eq!(first.id, "x1");
        assert_eq!(first.url.as_deref(), Some("http://a"));
        assert_eq!(first.meta.get("timestamp").map(String::as_str), Some("2020"));
    }

    #[test]
    fn truncated_gzip_is_a_file_error_after_the_good_records() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for i in 0..2000 {
            writeln!(enc, "{{\"text\":\"document number {i} with some words\"}}").unwrap();
        }
        let full = enc.finish().unwrap();
        let recs = read_all(&full[..full.len() / 2], Compression::Gzip);
        let docs = recs.iter().filter(|r| matches!(r, Record::Doc(_))).count();
        assert!(docs > 0 && docs < 2000, "docs = {docs}");
        assert!(matches!(recs.last(), Some(Record::FileError(r)) if r.reason == "truncated_input"));
    }

    #[test]
    fn oversized_line_is_skipped_without_losing_the_next() {
        let mut input = Vec::new();
        input.extend_from_slice(b"{\"text\":\"");
        input.extend(std::iter::repeat_n(b'a', 3 << 20));
        input.extend_from_slice(b"\"}\n{\"text\":\"after\"}\n");
        let recs = read_all(&input, Compression::None);
        assert!(matches!(&recs[0], Record::Reject(r) if r.reason == "doc_too_large"));
        assert!(matches!(&recs[1], Record::Doc(d) if d.text == "after" && d.source.offset == 1));
        assert_eq!(recs.len(), 2);
    }
}

#[cfg(test)]
mod zstd_tests {
    use super::*;
    use crate::source::Format;

    #[test]
    fn truncated_zstd_keeps_the_records_before_the_cut() {
        let mut lines = String::new();
        // Hash digits keep the stream from compressing into a single zstd block.
        for i in 0..10_000u64 {
            let noise = xxhash_rust::xxh3::xxh3_128(&i.to_le_bytes());
            lines.push_str(&format!("{{\"text\":\"document {i} {noise:032x}\"}}\n"));
        }
        let full = zstd::encode_all(lines.as_bytes(), 3).unwrap();
        let dir = std::env::temp_dir().join(format!("xinst-zstd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.jsonl.zst");
        std::fs::write(&path, &full[..full.len() * 3 / 4]).unwrap();
        let task = ShardTask {
            uri: "t.jsonl.zst".into(),
            format: Format::Jsonl,
            compression: Compression::Zstd,
            size: 0,
            version: String::new(),
            born: None,
        };
        let recs: Vec<Record> = records(&path, &task, &SourceConfig::default(), None).unwrap().collect();
        let docs = recs.iter().filter(|r| matches!(r, Record::Doc(_))).count();
        assert!(docs > 1000 && docs < 10_000, "docs = {docs}, compressed {} bytes", full.len());
        assert!(matches!(recs.last(), Some(Record::FileError(r)) if r.reason == "truncated_input"));
    }
}
