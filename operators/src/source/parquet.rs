//! Parquet shards (FineWeb / FineWeb-2 schema: `text`, `id`, `url`, `language`, `date`, `dump`, …).
//!
//! Streamed: only the needed columns are projected and the file is decoded a row group at a
//! time in batches of `parquet_batch_rows`; memory is one batch of those columns.

use super::{Progress, Record, ShardTask};
use crate::doc::{Origin, Reject};
use crate::source::read::{ReadError, SourceConfig};
use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

const OP: &str = "read";

/// Opens a Parquet shard. A file whose footer or schema cannot be read fails here; the
/// caller turns that into a file-level reject.
pub fn records(
    path: &Path,
    task: &ShardTask,
    cfg: &SourceConfig,
    progress: Option<Arc<Progress>>,
) -> Result<Box<dyn Iterator<Item = Record>>, ReadError> {
    let file =
        File::open(path).map_err(|e| ReadError::new("io_error", format!("open {}: {e}", path.display())))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| ReadError::new("corrupt_parquet", e.to_string()))?;
    let schema = builder.schema().clone();
    let wanted: Vec<&str> = [Some(cfg.text_field.as_str()), Some(&cfg.id_field), Some(&cfg.url_field)]
        .into_iter()
        .chain([cfg.lang_field.as_deref()])
        .flatten()
        .chain(cfg.meta_fields.iter().map(String::as_str))
        .collect();
    if schema.index_of(&cfg.text_field).is_err() {
        return Err(ReadError::new(
            "missing_text_column",
            format!(
                "no column '{}' (columns: {})",
                cfg.text_field,
                schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let roots: Vec<usize> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| wanted.contains(&f.name().as_str()))
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let rows_total = builder.metadata().file_metadata().num_rows().max(0) as u64;
    let reader = builder
        .with_projection(mask)
        .with_batch_size(cfg.parquet_batch_rows.get())
        .build()
        .map_err(|e| ReadError::new("corrupt_parquet", e.to_string()))?;
    Ok(Box::new(ParquetRecords {
        reader,
        shard: task.uri.clone(),
        cfg: cfg.clone(),
        row: 0,
        pending: std::collections::VecDeque::new(),
        done: false,
        progress,
        bytes_per_row: task.size as f64 / rows_total.max(1) as f64,
    }))
}

struct ParquetRecords {
    reader: ParquetRecordBatchReader,
    shard: String,
    cfg: SourceConfig,
    row: u64,
    pending: std::collections::VecDeque<Record>,
    done: bool,
    progress: Option<Arc<Progress>>,
    bytes_per_row: f64,
}

impl Iterator for ParquetRecords {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        loop {
            if let Some(r) = self.pending.pop_front() {
                return Some(r);
            }
            if self.done {
                return None;
            }
            match self.reader.next() {
                None => self.done = true,
                Some(Ok(batch)) => {
                    if let Some(p) = &self.progress {
                        let bytes = (batch.num_rows() as f64 * self.bytes_per_row) as u64;
                        p.bytes.fetch_add(bytes, Ordering::Relaxed);
                    }
                    self.decode(&batch)
                }
                Some(Err(e)) => {
                    self.done = true;
                    let origin = Origin { shard: self.shard.clone(), offset: self.row };
                    return Some(Record::FileError(Reject::new(
                        origin,
                        OP,
                        "corrupt_parquet",
                        format!("decoding rows from {}: {e}", self.row),
                        None,
                    )));
                }
            }
        }
    }
}

impl ParquetRecords {
    fn decode(&mut self, batch: &RecordBatch) {
        let column = |name: &str| -> Option<StringArray> {
            let col: &ArrayRef = batch.column_by_name(name)?;
            let utf8 = if col.data_type() == &DataType::Utf8 {
                col.clone()
            } else {
                cast(col, &DataType::Utf8).ok()?
            };
            utf8.as_any().downcast_ref::<StringArray>().cloned()
        };
        let text = column(&self.cfg.text_field);
        let id = column(&self.cfg.id_field);
        let url = column(&self.cfg.url_field);
        let lang = self.cfg.lang_field.as_deref().and_then(column);
        let meta: Vec<(String, StringArray)> =
            self.cfg.meta_fields.iter().filter_map(|name| column(name).map(|c| (name.clone(), c))).collect();
        let get = |col: &Option<StringArray>, i: usize| -> Option<String> {
            col.as_ref().filter(|c| c.is_valid(i)).map(|c| c.value(i).to_string())
        };
        for i in 0..batch.num_rows() {
            let origin = Origin { shard: self.shard.clone(), offset: self.row };
            self.row += 1;
            let doc_id = get(&id, i);
            let record = match get(&text, i) {
                None => Record::Reject(Reject::new(
                    origin,
                    OP,
                    "missing_text",
                    format!("column '{}' is null or not text", self.cfg.text_field),
                    doc_id,
                )),
                Some(t) => {
                    let fields: BTreeMap<String, String> = meta
                        .iter()
                        .filter(|(_, c)| c.is_valid(i))
                        .map(|(n, c)| (n.clone(), c.value(i).to_string()))
                        .collect();
                    self.cfg.finish_doc(doc_id, t, get(&url, i), get(&lang, i), fields, origin)
                }
            };
            self.pending.push_back(record);
        }
    }
}
