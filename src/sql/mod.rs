//! SQL over a dataset with DataFusion, local or on S3.
//!
//! Tables: `pairs` (the dataset under `lang=xx/`, with `lang` from the Hive partition and the
//! columns later stages add present as NULL until they run), `corpus` (documents that passed
//! every filter but were not sampled for an instruction, the same columns), `rejects`, `stats` (one row per
//! run and operator, from `stats/*.json`), `shards` and `epochs` (from the manifest). The
//! session is read-only unless `allow_write`: DDL, DML and COPY are refused.

mod committed;
pub mod udfs;

use crate::manifest::{Manifest, CORPUS_DIR, DUP_CLUSTERS_DIR, LANG_PREFIX};
use crate::pipeline::RunSummary;
use crate::sink::{docs_schema, rejects_schema};
use crate::store::Store;
use anyhow::{bail, Context, Result};
use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::MemTable;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{SessionConfig, SessionContext};
use std::sync::Arc;

/// Canned queries (`queries/*.sql`), compiled in so `--query NAME` works anywhere.
pub const CANNED: &[(&str, &str)] = &[
    ("lang_stats", include_str!("../../queries/lang_stats.sql")),
    ("rejects_by_reason", include_str!("../../queries/rejects_by_reason.sql")),
    ("label_distribution", include_str!("../../queries/label_distribution.sql")),
    ("pair_stats", include_str!("../../queries/pair_stats.sql")),
    ("cluster_sizes", include_str!("../../queries/cluster_sizes.sql")),
    ("dup_clusters", include_str!("../../queries/dup_clusters.sql")),
    ("top_verbs", include_str!("../../queries/top_verbs.sql")),
    ("epochs", include_str!("../../queries/epochs.sql")),
];

/// The one-line question a canned query answers (its first `--` comment).
pub fn describe(sql: &str) -> &str {
    sql.lines().find_map(|l| l.trim().strip_prefix("--")).map(str::trim).unwrap_or("")
}

pub struct SqlSession {
    pub ctx: SessionContext,
    allow_write: bool,
}

impl SqlSession {
    /// Registers the dataset at `data` (a folder or `s3://bucket/prefix`).
    pub async fn open(data: &str, allow_write: bool) -> Result<SqlSession> {
        let store = Store::open(data, false).with_context(|| format!("dataset {data}"))?;
        let config = SessionConfig::new().with_information_schema(true).with_target_partitions(2);
        let ctx = SessionContext::new_with_config(config);
        let listed = validate_partitions(&store).await?;
        let manifest = load_manifest(&store, data).await?;
        warn_uncommitted(&manifest, &listed);
        // DataFusion lists the tables' folders through a store that shows exactly the
        // committed files: a stray or uncommitted part (a crash mid-commit, a file copied by
        // hand) is never read.
        let root = match &store.local_root {
            Some(dir) => {
                let all: Arc<dyn object_store::ObjectStore> =
                    Arc::new(object_store::local::LocalFileSystem::new());
                let filtered =
                    committed::CommittedOnly::new(all, &dir.display().to_string(), manifest.files());
                ctx.register_object_store(&url::Url::parse("file://")?, Arc::new(filtered));
                format!("file://{}/", dir.display())
            }
            None => {
                let url = url::Url::parse(&store.display_root)?;
                let filtered = committed::CommittedOnly::new(
                    store.store.clone(),
                    store.prefix.as_ref(),
                    manifest.files(),
                );
                ctx.register_object_store(&url, Arc::new(filtered));
                format!("{}/{}/", store.display_root, store.prefix)
            }
        };
        register_by_lang(&ctx, "pair_files", &root)?;
        // Documents that passed every filter but were not sampled for an instruction.
        register_by_lang(&ctx, "corpus", &format!("{root}{CORPUS_DIR}/"))?;
        // Dedup's clusters of two or more documents (the representatives and the rejected
        // duplicates); `pairs` takes each kept document's cluster from it.
        register_folder(
            &ctx,
            "dup_clusters",
            &format!("{root}{DUP_CLUSTERS_DIR}/"),
            crate::dedup::dup_clusters_schema(),
        )?;
        register_folder(&ctx, "rejects", &format!("{root}rejects/"), rejects_schema())?;
        // `xinst diversify`'s clusters and selection (empty until it has run).
        register_folder(
            &ctx,
            "diversity",
            &format!("{root}diversity/"),
            crate::diversify::selection_schema(),
        )?;
        register_state_tables(&ctx, &store, &manifest).await?;
        // Datasets built with dedup: a document outside every cluster of two is its own
        // cluster of one. Without dedup the columns are NULL.
        let view = if manifest.dedup.is_some() {
            "SELECT p.*, COALESCE(c.dup_cluster_id, p.id) AS dup_cluster_id, \
             COALESCE(c.dup_cluster_size, 1) AS dup_cluster_size \
             FROM pair_files p LEFT JOIN dup_clusters c ON p.id = c.id AND c.representative"
        } else {
            "SELECT p.*, CAST(NULL AS VARCHAR) AS dup_cluster_id, \
             CAST(NULL AS BIGINT UNSIGNED) AS dup_cluster_size FROM pair_files p"
        };
        let pairs = ctx.sql(view).await?.into_view();
        ctx.deregister_table("pair_files")?;
        ctx.register_table("pairs", pairs)?;
        udfs::register(&ctx);
        Ok(SqlSession { ctx, allow_write })
    }

    /// Runs one statement; refuses writes unless the session allows them.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let options = SQLOptions::new()
            .with_allow_ddl(self.allow_write)
            .with_allow_dml(self.allow_write)
            .with_allow_statements(true);
        let df = match self.ctx.sql_with_options(sql, options).await {
            Ok(df) => df,
            Err(e) if !self.allow_write && is_write_refusal(&e) => {
                bail!("{e}\nthe SQL session is read-only; pass --allow-write to run statements that write")
            }
            Err(e) => return Err(e.into()),
        };
        if !self.allow_write && is_copy(sql) {
            bail!("COPY writes files; the SQL session is read-only (pass --allow-write)");
        }
        Ok(df.collect().await?)
    }
}

/// Registers the documents under `url`'s `lang=xx/` folders as table `name`, with `lang` from
/// the folder.
fn register_by_lang(ctx: &SessionContext, name: &str, url: &str) -> Result<()> {
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![("lang".to_string(), DataType::Utf8)]);
    let table = ListingTableConfig::new(ListingTableUrl::parse(url)?)
        .with_listing_options(options)
        .with_schema(docs_schema());
    ctx.register_table(name, Arc::new(ListingTable::try_new(table)?))?;
    Ok(())
}

/// Registers the Parquet files under `url` (a folder of the dataset) as table `name`.
fn register_folder(
    ctx: &SessionContext,
    name: &str,
    url: &str,
    schema: datafusion::arrow::datatypes::SchemaRef,
) -> Result<()> {
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let table = ListingTableConfig::new(ListingTableUrl::parse(url)?)
        .with_listing_options(options)
        .with_schema(schema);
    ctx.register_table(name, Arc::new(ListingTable::try_new(table)?))?;
    Ok(())
}

/// DataFusion's refusal of a statement that SQLOptions forbids ("DDL not supported: …").
fn is_write_refusal(e: &datafusion::error::DataFusionError) -> bool {
    let msg = e.to_string();
    msg.contains("not supported") && (msg.contains("DDL") || msg.contains("DML"))
}

fn is_copy(sql: &str) -> bool {
    sql.trim_start().get(..4).is_some_and(|k| k.eq_ignore_ascii_case("copy"))
}

/// The dataset's manifest; a folder without one is not a dataset (a common slip: the demo's
/// folder instead of its `dataset/`).
async fn load_manifest(store: &Store, data: &str) -> Result<Manifest> {
    use object_store::ObjectStoreExt;
    let manifest_path = store.path(crate::manifest::MANIFEST);
    match store.store.get(&manifest_path).await {
        Ok(got) => Ok(serde_json::from_slice(&got.bytes().await?).context("corrupt manifest")?),
        Err(object_store::Error::NotFound { .. }) => {
            let inner = store.path(&format!("dataset/{}", crate::manifest::MANIFEST));
            let hint = match store.store.head(&inner).await {
                Ok(_) => format!(" (did you mean --data {}/dataset?)", data.trim_end_matches('/')),
                Err(_) => String::new(),
            };
            bail!(
                "{data} is not an xinstruct dataset: it has no {}{hint}; `xinst run` writes one",
                crate::manifest::MANIFEST
            )
        }
        Err(e) => Err(e.into()),
    }
}

/// Says once when the dataset's folders hold data files its manifest does not commit (they
/// are not read).
fn warn_uncommitted(manifest: &Manifest, listed: &[String]) {
    let committed = manifest.files();
    let stray: Vec<&String> =
        listed.iter().filter(|f| committed::is_data_file(f) && !committed.contains(*f)).collect();
    if let Some(first) = stray.first() {
        eprintln!(
            "warning: {} data files in the dataset are not in its manifest and are not read (e.g. {first}); \
             the next `xinst run` on it cleans up its own",
            stray.len()
        );
    }
}

/// Partition folders must be `lang=<code>` with a plain code: a value that could escape the
/// dataset (`..`, slashes, …) is refused before anything reads it. Returns every file's path
/// relative to the dataset root.
async fn validate_partitions(store: &Store) -> Result<Vec<String>> {
    use futures::TryStreamExt;
    let prefix = (!store.prefix.as_ref().is_empty()).then_some(&store.prefix);
    let listed: Vec<object_store::ObjectMeta> = store.store.list(prefix).try_collect().await?;
    let rels: Vec<String> = listed.iter().map(|m| store.rel_of(&m.location)).collect();
    for rel in &rels {
        // `lang=xx/…` and `corpus/lang=xx/…`.
        let mut parts = rel.split('/');
        let Some(mut first) = parts.next() else { continue };
        if first == CORPUS_DIR {
            first = parts.next().unwrap_or_default();
        }
        if let Some(value) = first.strip_prefix(LANG_PREFIX) {
            let ok = !value.is_empty()
                && value.len() <= 32
                && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok {
                bail!("partition folder '{first}' has an invalid value; refusing to read the dataset");
            }
        }
    }
    Ok(rels)
}

/// `stats`, `shards` and `epochs`: small tables built from the run stats and the manifest.
async fn register_state_tables(ctx: &SessionContext, store: &Store, manifest: &Manifest) -> Result<()> {
    use object_store::ObjectStoreExt;
    let mut runs: Vec<RunSummary> = Vec::new();
    {
        use futures::TryStreamExt;
        let stats_dir = store.path("stats");
        let listed: Vec<object_store::ObjectMeta> = store.store.list(Some(&stats_dir)).try_collect().await?;
        for meta in listed.iter().filter(|m| m.location.as_ref().ends_with(".json")) {
            let bytes = store.store.get(&meta.location).await?.bytes().await?;
            match serde_json::from_slice(&bytes) {
                Ok(run) => runs.push(run),
                Err(e) => tracing::warn!(file = %meta.location, error = %e, "skipping unreadable stats file"),
            }
        }
    }
    runs.sort_by_key(|r| r.started_at_unix_ms);

    let (mut run, mut op, mut docs_in, mut docs_out, mut dropped, mut secs, mut input, mut wall) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut judge_pairs, mut judge_auc) = (vec![], vec![]);
    for r in &runs {
        let judge = r.judge.as_ref().filter(|j| j.pairs > 0);
        for (name, s) in &r.operators {
            judge_pairs.push(judge.map_or(0, |j| j.pairs));
            judge_auc.push(judge.map(|j| j.discrimination));
            run.push(r.started_at_unix_ms as u64);
            input.push(r.input.clone());
            wall.push(r.wall_secs);
            op.push(name.clone());
            docs_in.push(s.docs_in);
            docs_out.push(s.docs_out);
            dropped.push(s.dropped_total());
            secs.push(s.nanos as f64 / 1e9);
        }
    }
    mem_table(
        ctx,
        "stats",
        vec![
            ("run_started_ms", Arc::new(UInt64Array::from(run)) as ArrayRef),
            ("input", Arc::new(StringArray::from(input))),
            ("wall_secs", Arc::new(Float64Array::from(wall))),
            ("operator", Arc::new(StringArray::from(op))),
            ("docs_in", Arc::new(UInt64Array::from(docs_in))),
            ("docs_out", Arc::new(UInt64Array::from(docs_out))),
            ("dropped", Arc::new(UInt64Array::from(dropped))),
            ("secs", Arc::new(Float64Array::from(secs))),
            // The run's judge self-check (the same on each of its rows; NULL when none ran).
            ("judge_pairs", Arc::new(UInt64Array::from(judge_pairs))),
            ("judge_discrimination", Arc::new(Float64Array::from(judge_auc))),
        ],
    )?;

    let shards: Vec<_> = manifest.shards.values().collect();
    mem_table(
        ctx,
        "shards",
        vec![
            (
                "uri",
                Arc::new(StringArray::from_iter_values(shards.iter().map(|s| s.uri.clone()))) as ArrayRef,
            ),
            ("epoch", Arc::new(UInt64Array::from_iter_values(shards.iter().map(|s| s.epoch)))),
            ("size", Arc::new(UInt64Array::from_iter_values(shards.iter().map(|s| s.size)))),
            ("docs_read", Arc::new(UInt64Array::from_iter_values(shards.iter().map(|s| s.docs)))),
            ("read_rejects", Arc::new(UInt64Array::from_iter_values(shards.iter().map(|s| s.rejects)))),
            ("files", Arc::new(UInt64Array::from_iter_values(shards.iter().map(|s| s.files.len() as u64)))),
            ("file_error", Arc::new(StringArray::from_iter(shards.iter().map(|s| s.file_error.clone())))),
            (
                "content_hash",
                Arc::new(StringArray::from_iter_values(shards.iter().map(|s| s.content_hash.clone()))),
            ),
        ],
    )?;
    let epochs = &manifest.epochs;
    mem_table(
        ctx,
        "epochs",
        vec![
            ("epoch", Arc::new(UInt64Array::from_iter_values(epochs.iter().map(|e| e.epoch))) as ArrayRef),
            (
                "committed_at",
                Arc::new(StringArray::from_iter_values(epochs.iter().map(|e| e.committed_at.clone()))),
            ),
            ("shards_added", Arc::new(UInt64Array::from_iter_values(epochs.iter().map(|e| e.shards_added)))),
            (
                "shards_replaced",
                Arc::new(UInt64Array::from_iter_values(epochs.iter().map(|e| e.shards_replaced))),
            ),
            ("docs_read", Arc::new(UInt64Array::from_iter_values(epochs.iter().map(|e| e.docs_read)))),
            ("read_rejects", Arc::new(UInt64Array::from_iter_values(epochs.iter().map(|e| e.read_rejects)))),
        ],
    )?;
    Ok(())
}

fn mem_table(ctx: &SessionContext, name: &str, columns: Vec<(&str, ArrayRef)>) -> Result<()> {
    let schema = Arc::new(Schema::new(
        columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, a)| a).collect())?;
    ctx.register_table(name, Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))?;
    Ok(())
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

pub fn render(batches: &[RecordBatch], format: OutputFormat) -> Result<String> {
    Ok(match format {
        OutputFormat::Table => datafusion::arrow::util::pretty::pretty_format_batches(batches)?.to_string(),
        OutputFormat::Csv => {
            let mut out = Vec::new();
            {
                let mut w = datafusion::arrow::csv::Writer::new(&mut out);
                for b in batches {
                    w.write(b)?;
                }
            }
            String::from_utf8(out)?
        }
        OutputFormat::Json => {
            let mut out = Vec::new();
            {
                let mut w = datafusion::arrow::json::ArrayWriter::new(&mut out);
                let refs: Vec<&RecordBatch> = batches.iter().collect();
                w.write_batches(&refs)?;
                w.finish()?;
            }
            String::from_utf8(out)?
        }
    })
}
