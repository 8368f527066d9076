//! Common Crawl WET shards (`.warc.wet.gz`): WARC `conversion` records hold the extracted
//! plain text; `warcinfo` records are skipped. Parsed with the `warc` crate, streamed record
//! by record (one record's body in memory).

use super::{io_reason, Compression, CountingRead, Progress, Record, ShardTask};
use crate::doc::{Origin, Reject};
use crate::source::read::{ReadError, SourceConfig};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use warc::{RecordType, WarcHeader, WarcReader};

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
    let mut iter = WarcReader::new(BufReader::with_capacity(1 << 16, decoded)).iter_records();
    let mut index: u64 = 0;
    let mut failed = false;
    Ok(Box::new(std::iter::from_fn(move || loop {
        if failed {
            return None;
        }
        let origin = Origin { shard: shard.clone(), offset: index };
        let item = iter.next()?;
        index += 1;
        let record = match item {
            Ok(r) => r,
            Err(e) => {
                failed = true;
                let reason = match &e {
                    warc::Error::ReadData(io) => io_reason(io),
                    warc::Error::UnexpectedEOB => "truncated_input",
                    _ => "corrupt_warc",
                };
                return Some(Record::FileError(Reject::new(
                    origin,
                    OP,
                    reason,
                    match &e {
                        warc::Error::ReadData(io) => {
                            format!("WARC record {}: {e}: {io}", index - 1)
                        }
                        _ => format!("WARC record {}: {e}", index - 1),
                    },
                    None,
                )));
            }
        };
        if *record.warc_type() != RecordType::Conversion {
            continue;
        }
        let id = record
            .header(WarcHeader::RecordID)
            .map(|v| v.trim().trim_start_matches('<').trim_end_matches('>').to_string());
        let url = record.header(WarcHeader::TargetURI).map(|v| v.into_owned());
        let mut meta = BTreeMap::new();
        meta.insert("warc_date".to_string(), record.date().to_rfc3339());
        if let Some(langs) =
            record.header(WarcHeader::Unknown("warc-identified-content-language".to_string()))
        {
            meta.insert("cc_languages".to_string(), langs.into_owned());
        }
        let text = match String::from_utf8(record.body().to_vec()) {
            Ok(t) => t,
            Err(e) => {
                return Some(Record::Reject(Reject::new(
                    origin,
                    OP,
                    "invalid_utf8",
                    format!("invalid UTF-8 at byte {} of the body", e.utf8_error().valid_up_to()),
                    id,
                )))
            }
        };
        return Some(cfg.finish_doc(id, text, url, None, meta, origin));
    })))
}
