//! Common Crawl WET shards (`.warc.wet.gz`): WARC `conversion` records hold the extracted
//! plain text; `warcinfo` records are skipped. Parsed by [`super::warc`], streamed record by
//! record (one record's body in memory); a bad record is a reject and the file goes on.

use super::warc::{Item, Limits, WarcReader};
use super::{Compression, CountingRead, Progress, Record, ShardTask};
use crate::doc::{Origin, Reject};
use crate::source::read::{ReadError, SourceConfig};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;

const OP: &str = "read";

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
    let shard = task.uri.clone();
    let cfg = cfg.clone();
    let mut reader = WarcReader::new(BufReader::with_capacity(1 << 16, decoded), Limits::default());
    let mut index: u64 = 0;
    Ok(Box::new(std::iter::from_fn(move || loop {
        let origin = Origin { shard: shard.clone(), offset: index };
        let item = reader.next()?;
        index += 1;
        let record = match item {
            Item::Record(r) => r,
            Item::Bad(bad) => {
                let reject = Reject::new(origin, OP, bad.reason, bad.detail, bad.record_id);
                return Some(if bad.fatal { Record::FileError(reject) } else { Record::Reject(reject) });
            }
        };
        if !record.header("WARC-Type").is_some_and(|t| t.eq_ignore_ascii_case("conversion")) {
            continue;
        }
        let id = record
            .header("WARC-Record-ID")
            .map(|v| v.trim().trim_start_matches('<').trim_end_matches('>').to_string());
        let url = record.header("WARC-Target-URI").map(String::from);
        let mut meta = BTreeMap::new();
        if let Some(date) = record.header("WARC-Date") {
            meta.insert("warc_date".to_string(), date.to_string());
        }
        if let Some(langs) = record.header("WARC-Identified-Content-Language") {
            meta.insert("cc_languages".to_string(), langs.to_string());
        }
        let text = match String::from_utf8(record.body) {
            Ok(t) => t,
            Err(e) => {
                return Some(Record::Reject(Reject::new(
                    origin,
                    OP,
                    "invalid_utf8",
                    format!(
                        "WARC record at byte {}: invalid UTF-8 at byte {} of the body",
                        record.offset,
                        e.utf8_error().valid_up_to()
                    ),
                    id,
                )))
            }
        };
        return Some(cfg.finish_doc(id, text, url, None, meta, origin));
    })))
}
