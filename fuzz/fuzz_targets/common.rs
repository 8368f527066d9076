// Shared by the reader targets: the input becomes a shard file, read to the end.
use std::io::Write;
use xinstruct_operators::source::read::SourceConfig;
use xinstruct_operators::source::{Compression, Format, Record, ShardTask};

pub fn read_all(data: &[u8], format: Format, ext: &str) {
    let path = std::env::temp_dir().join(format!("xinst-fuzz-{}.{ext}", std::process::id()));
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
        Format::Jsonl => xinstruct_operators::source::jsonl::records(&path, &task, &cfg, None),
        Format::Parquet => xinstruct_operators::source::parquet::records(&path, &task, &cfg, None),
        Format::Wet => xinstruct_operators::source::wet::records(&path, &task, &cfg, None),
    };
    if let Ok(records) = records {
        for r in records.take(100_000) {
            if let Record::Doc(d) = r {
                assert!(!d.id.is_empty());
            }
        }
    }
}
