//! `xinst`: the command-line front end.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xinstruct::config::{Config, OperatorName, DEFAULT_TOML};
use xinstruct::pipeline::{self, Cluster, RunOptions, RunSummary};
use xinstruct::sql::{OutputFormat, SqlSession, CANNED};
use xinstruct::store::Store;
use xinstruct_operators::lang_id::{Backend, LangIdentifier};
use xinstruct_operators::normalize::Normalizer;
use xinstruct_operators::source::Progress;

const EXAMPLES: &str = "\
Examples:
  xinst demo                                   # the bundled sample -> ./xinstruct-demo/dataset
  xinst run --input crawl/ --output out/       # a local folder (recursively) or a glob
  xinst run --input 's3://crawl/CC-MAIN-2024-10/*.warc.wet.gz' --output s3://datasets/x
  xinst watch crawl/ --output out/ --interval 300
  xinst run --input crawl/ --output out/ --workers 2 --processes 2 --process 0 --hostfile hosts.txt
  xinst config --print-default > xinstruct.toml

Exit codes: 0 success; 1 error (nothing committed for the failing epoch);
            2 bad command line; 3 finished, but some shards were unreadable in part or whole
            (see the rejects dataset and the run stats); 4 finished, but documents await the
            model (it was down or failing): run again when it is back, only they are redone.
S3: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION as for the AWS CLI.
Logs: RUST_LOG=info (or debug, xinstruct=debug, …).";

#[derive(Parser)]
#[command(name = "xinst", version, about = "Build cross-lingual instruction data (X-Instruction) from web crawls", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Process every new or changed shard of the input once, then exit.
    Run {
        /// Input: a local folder, glob or file, or s3://bucket/prefix[/glob].
        #[arg(long)]
        input: String,
        #[command(flatten)]
        common: Common,
    },
    /// Keep polling the input; every poll that finds new shards becomes a new epoch.
    /// Ctrl-C finishes the current epoch, commits it and exits.
    Watch {
        /// Input: a local folder, glob or file, or s3://bucket/prefix[/glob].
        input: String,
        /// Seconds between polls (overrides [watch] interval_secs).
        #[arg(long)]
        interval: Option<u64>,
        #[command(flatten)]
        common: Common,
    },
    /// Run the pipeline on the bundled sample crawl.
    Demo {
        /// Folder for the sample input (DIR/input) and the dataset (DIR/dataset).
        #[arg(long, default_value = "xinstruct-demo")]
        output: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        workers: Option<usize>,
        #[arg(long)]
        stats_json: Option<PathBuf>,
        #[arg(long)]
        no_progress: bool,
        /// Fraction of the sample's documents that get an instruction pair: the default keeps
        /// the demo to a few minutes on two CPU cores; 1 makes pairs for all.
        #[arg(long, default_value_t = 0.15)]
        sample_rate: f64,
        /// Turn operators off (comma-separated), e.g. `evaluate,refine`.
        #[arg(long, value_delimiter = ',')]
        skip: Vec<OperatorName>,
    },
    /// Label languages: one text per line on stdin, `lang<TAB>confidence` per line on stdout,
    /// with the pipeline's normalization, model and [lang_id] config. `--verdict` adds a third
    /// column: `ok` or the reason the pipeline would reject the line.
    Langid {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        verdict: bool,
    },
    /// Generate text with a model once, for a quick manual check (temperature 0 = greedy).
    Generate(GenerateArgs),
    /// Serve a local model over an OpenAI-compatible API (/v1/completions, /v1/chat/completions).
    Serve {
        #[arg(long, default_value = "gemma-3-270m")]
        model: String,
        /// Address to listen on (port 0 = any free port; the address is printed).
        #[arg(long, default_value = "127.0.0.1:8000")]
        addr: String,
        /// Sequences decoded together.
        #[arg(long, default_value_t = 8)]
        max_batch: usize,
        /// cpu, cuda, cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Tokens a sequence may hold (prompt + answer); `max_tokens` is capped to it.
        #[arg(long, default_value_t = 4096)]
        max_context: usize,
        /// Largest request body accepted (MiB); larger ones get 413.
        #[arg(long, default_value_t = 8)]
        max_body_mib: usize,
        /// Connections open at once; more are closed at accept.
        #[arg(long, default_value_t = 256)]
        max_connections: usize,
        /// Seconds a client has to send a request's headers (and its body).
        #[arg(long, default_value_t = 30)]
        read_timeout_secs: u64,
        /// Environment variable holding an API key: requests must then send it as
        /// `Authorization: Bearer KEY`. Use it whenever the address is reachable beyond this
        /// machine.
        #[arg(long)]
        api_key_env: Option<String>,
    },
    /// SQL over a dataset (tables pairs, corpus, rejects, stats, shards, epochs), local or on S3.
    /// With no statement, --file or --query: an interactive shell.
    Sql {
        /// The statement to run.
        statement: Option<String>,
        /// The dataset: an output folder or s3://bucket/prefix.
        #[arg(long, default_value = "xinstruct-demo/dataset")]
        data: String,
        /// Run the statement in this file.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Run a canned query from queries/ (see --list).
        #[arg(long)]
        query: Option<String>,
        /// List the canned queries.
        #[arg(long)]
        list: bool,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
        /// Allow statements that write (COPY, CREATE EXTERNAL TABLE, INSERT).
        #[arg(long)]
        allow_write: bool,
    },
    /// A self-contained HTML report of a dataset (plus each chart as PNG).
    Report {
        /// The dataset: an output folder or s3://bucket/prefix.
        #[arg(long, default_value = "xinstruct-demo/dataset")]
        data: String,
        /// Folder for index.html and charts/*.png.
        #[arg(long, default_value = "xinstruct-report")]
        out: PathBuf,
    },
    /// Training files from the dataset's pairs (JSON Lines) with "Answer in {Language}."
    /// appended, plus the LLaMA-Factory dataset_info.json entry beside them.
    Export {
        /// The dataset: an output folder or s3://bucket/prefix.
        #[arg(long, default_value = "xinstruct-demo/dataset")]
        data: String,
        #[arg(long, value_enum, default_value = "alpaca")]
        format: xinstruct::export::ExportFormat,
        /// The file to write (.jsonl).
        #[arg(long)]
        out: PathBuf,
        /// Appended to every instruction ({language} = the response's language); "" for none.
        #[arg(long, default_value = "Answer in {language}.")]
        suffix: String,
        /// Only these labels (comma-separated), e.g. good; default: every pair in the dataset.
        #[arg(long, value_delimiter = ',')]
        labels: Vec<String>,
        /// Leave out pairs flagged as translation requests.
        #[arg(long)]
        drop_translate: bool,
        /// The dataset's name: its dataset_info.json entry is NAME_FORMAT (xinstruct_alpaca, …).
        #[arg(long, default_value = "xinstruct")]
        name: String,
        /// Only the pairs `xinst diversify` selected (the per-language quota).
        #[arg(long)]
        selected: bool,
    },
    /// Take documents down: add ids (one per line) to the dataset's takedown list. The next
    /// `xinst run` over the input re-reads the shards holding them, rejects them as
    /// `taken_down` and promotes the next document of each of their duplicate clusters.
    Retract {
        /// File of document ids, one per line (`#` comments allowed).
        #[arg(long)]
        ids: PathBuf,
        /// The dataset: an output folder or s3://bucket/prefix.
        #[arg(long)]
        data: String,
    },
    /// Diversify a dataset's pairs: embed the instructions, k-means per language, fill the
    /// [sample] quota round-robin across clusters (writes diversity/ and prints the figures).
    Diversify {
        #[arg(long, default_value = "xinstruct-demo/dataset")]
        data: String,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Pairs per language (overrides [sample] quota).
        #[arg(long)]
        quota: Option<usize>,
        /// Re-cluster from scratch instead of assigning to the saved centroids.
        #[arg(long)]
        rebuild: bool,
        /// Threads for k-means (overrides [kmeans] threads).
        #[arg(long)]
        workers: Option<usize>,
        /// The memo cache for embeddings (default: the dataset's own).
        #[arg(long)]
        memo: Option<PathBuf>,
    },
    /// Response -> instruction training data for a dedicated generator (the paper's seed step):
    /// JSON Lines with an English instruction and its target-language response per line.
    Seed {
        #[arg(long)]
        input: PathBuf,
        /// The training file to write (Alpaca JSON Lines); rejects go to OUT.rejects.jsonl.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "instruction")]
        instruction_field: String,
        #[arg(long, default_value = "output")]
        response_field: String,
        /// TOML config whose [reverse_instruction] template the generator will be prompted with.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value = "xinstruct_seed")]
        name: String,
    },
    /// Model files: list them, fetch them into the cache (default: all), verify checksums.
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
    /// Configuration helpers.
    Config {
        /// Print the default configuration (TOML, with comments).
        #[arg(long)]
        print_default: bool,
        /// Check a config file and print it with defaults filled in.
        #[arg(long)]
        check: Option<PathBuf>,
    },
}

#[derive(Args)]
struct GenerateArgs {
    /// A name from `xinst models list`, a path (GGUF file or model directory), a Hugging Face id,
    /// or an OpenAI-compatible server URL (http://host:port/v1).
    #[arg(long, default_value = "gemma-3-270m")]
    model: String,
    /// The prompt (raw text; --chat wraps it as one user message in the model's chat template).
    #[arg(long)]
    prompt: String,
    #[arg(long)]
    chat: bool,
    #[arg(long, default_value_t = 128)]
    max_new_tokens: usize,
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    #[arg(long, default_value_t = 0.9)]
    top_p: f32,
    #[arg(long, default_value_t = 50)]
    top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
    #[arg(long, default_value_t = 0)]
    no_repeat_ngram_size: usize,
    /// Stop strings (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// cpu, cuda, cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print token counts and speed to stderr.
    #[arg(long)]
    verbose: bool,
}

#[derive(Subcommand)]
enum ModelsAction {
    /// Models, their cache paths, and whether they are present.
    List,
    /// Download and verify models (all when no name is given); also takes Hugging Face Hub ids (org/name).
    Fetch { names: Vec<String> },
    /// Check cached models against their checksums.
    Verify,
}

#[derive(Args)]
struct Common {
    /// Output: a local folder or s3://bucket/prefix.
    #[arg(long)]
    output: String,
    /// Write into an output folder that holds files xinstruct did not write (they are never
    /// read or deleted); without it such a folder is refused.
    #[arg(long)]
    force: bool,
    /// TOML config (see `xinst config --print-default`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Worker threads per process (overrides [run] workers).
    #[arg(long)]
    workers: Option<usize>,
    /// This process's index in a cluster (0-based).
    #[arg(long, default_value_t = 0)]
    process: usize,
    /// Number of processes in the cluster.
    #[arg(long, default_value_t = 1)]
    processes: usize,
    /// host:port per line, one per process (default localhost:2101+i).
    #[arg(long)]
    hostfile: Option<PathBuf>,
    /// Shards per epoch (overrides [run] shards_per_epoch).
    #[arg(long)]
    shards_per_epoch: Option<usize>,
    /// Epochs running at once (overrides [run] epochs_in_flight; 1 = one after the other).
    #[arg(long)]
    epochs_in_flight: Option<usize>,
    /// Remove the output of shards that disappeared from the input.
    #[arg(long)]
    prune: bool,
    /// Turn operators off for this run (comma-separated).
    #[arg(long, value_delimiter = ',')]
    skip: Vec<OperatorName>,
    /// Also write the end-of-run stats to this local JSON file.
    #[arg(long)]
    stats_json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Fraction of documents that get an instruction (overrides [reverse_instruction]
    /// sample_rate; picked by id, the same on every run).
    #[arg(long)]
    sample_rate: Option<f64>,
    /// Print which shards the run would read and why (new, changed, made with other
    /// settings, ...), then exit without doing it.
    #[arg(long)]
    plan: bool,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Config { print_default, check } => {
            if let Some(path) = check {
                let cfg = Config::load(Some(&path))?;
                print!("{}", toml::to_string_pretty(&cfg)?);
            } else if print_default {
                print!("{DEFAULT_TOML}");
            } else {
                bail!("say --print-default or --check FILE");
            }
            Ok(0)
        }
        Command::Run { input, common } => run(input, common, false, None),
        Command::Langid { config, verdict } => langid(config.as_deref(), verdict),
        Command::Models { action } => models(action),
        Command::Generate(args) => generate(args),
        Command::Serve {
            model,
            addr,
            max_batch,
            device,
            max_context,
            max_body_mib,
            max_connections,
            read_timeout_secs,
            api_key_env,
        } => {
            let engine = xinstruct_operators::generate::EngineConfig {
                max_batch,
                device,
                max_context,
                ..Default::default()
            };
            let api_key = match &api_key_env {
                Some(var) => Some(
                    std::env::var(var)
                        .ok()
                        .filter(|k| !k.is_empty())
                        .with_context(|| format!("--api-key-env {var}: the variable is not set"))?,
                ),
                None => None,
            };
            let cfg = xinstruct::serve::ServeConfig {
                max_body_bytes: max_body_mib.max(1) << 20,
                max_connections,
                read_timeout: std::time::Duration::from_secs(read_timeout_secs.max(1)),
                api_key,
            };
            xinstruct::serve::serve(&model, &addr, &engine, cfg)?;
            Ok(0)
        }
        Command::Diversify { data, config, quota, rebuild, workers, memo } => {
            let mut cfg = Config::load(config.as_deref())?;
            if let Some(q) = quota {
                cfg.sample.quota = q;
            }
            if let Some(w) = workers {
                cfg.kmeans.threads = w.max(1);
            }
            let opts = xinstruct::diversify::DiversifyOptions { data, rebuild, memo };
            let report = xinstruct::diversify::diversify(&cfg, &opts)?;
            eprint!("{}", xinstruct::diversify::render(&report));
            Ok(0)
        }
        Command::Export { data, format, out, suffix, labels, drop_translate, name, selected } => {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            let opts = xinstruct::export::ExportOptions {
                format,
                out,
                suffix,
                labels,
                drop_translate,
                name,
                selected,
            };
            let done = rt.block_on(async {
                let session = SqlSession::open(&data, false).await?;
                xinstruct::export::export(&session, &opts).await
            })?;
            let langs: Vec<String> = done.by_lang.iter().map(|(l, n)| format!("{l} {n}")).collect();
            eprintln!(
                "{} pairs -> {} ({}); {} entry {:?}; axolotl: {}",
                done.rows,
                opts.out.display(),
                if langs.is_empty() { "none".to_string() } else { langs.join(", ") },
                done.dataset_info.display(),
                done.entry,
                done.axolotl.display()
            );
            Ok(0)
        }
        Command::Seed { input, out, instruction_field, response_field, config, name } => {
            let cfg = Config::load(config.as_deref())?;
            let template = cfg.reverse_instruction.template().map_err(|e| anyhow::anyhow!(e))?;
            let opts = xinstruct::seed::SeedOptions {
                input,
                out,
                instruction_field,
                response_field,
                template,
                name,
            };
            let done = xinstruct::seed::seed(&opts)?;
            eprintln!("{} examples -> {}; {}", done.rows, opts.out.display(), done.dataset_info.display());
            if let Some(r) = &done.rejects_file {
                eprintln!("{} lines rejected -> {}", done.rejects, r.display());
            }
            Ok(if done.rejects > 0 { 3 } else { 0 })
        }
        Command::Retract { ids, data } => {
            let done = xinstruct::dedup::retract(&data, &ids)?;
            eprintln!(
                "{} ids added to the takedown list ({} already on it); {} found in {} shards",
                done.ids,
                done.already_listed,
                done.found,
                done.shards.len()
            );
            eprintln!("run `xinst run INPUT {data}` to apply: it reads those shards again");
            Ok(0)
        }
        Command::Report { data, out } => {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            let index = rt.block_on(async {
                let session = SqlSession::open(&data, false).await?;
                xinstruct::report::build(&session, &data, &out).await
            })?;
            println!("{}", index.display());
            Ok(0)
        }
        Command::Sql { statement, data, file, query, list, format, allow_write } => {
            sql(statement, &data, file, query, list, format, allow_write)
        }
        Command::Watch { input, interval, common } => run(input, common, true, interval),
        Command::Demo { output, config, workers, stats_json, no_progress, sample_rate, skip } => {
            let input_dir = output.join("input");
            let written = xinstruct::sample::extract(&input_dir)?;
            eprintln!("sample crawl: {} ({} shard files written)", input_dir.display(), written);
            // The demo's settings as a config file: runs on its dataset with it continue the
            // demo (a run with other settings redoes what they change).
            let mut settings = Config::load(config.as_deref())?;
            demo_defaults(&mut settings);
            settings.reverse_instruction.sample_rate = sample_rate;
            settings.validate().context("--sample-rate")?;
            let config_file = output.join("xinstruct.toml");
            std::fs::write(
                &config_file,
                format!(
                    "# The settings of `xinst demo` (its defaults for the bundled 270M base model); rerun with\n\
                     # xinst run --input {0}/input --output {0}/dataset --config {1}\n{2}",
                    output.display(),
                    config_file.display(),
                    toml::to_string_pretty(&settings)?
                ),
            )
            .with_context(|| format!("writing {}", config_file.display()))?;
            let common = Common {
                output: output.join("dataset").display().to_string(),
                force: false,
                config: Some(config_file.clone()),
                workers,
                process: 0,
                processes: 1,
                hostfile: None,
                shards_per_epoch: None,
                epochs_in_flight: None,
                prune: false,
                skip,
                stats_json,
                no_progress,
                sample_rate: None,
                plan: false,
            };
            let code = run(input_dir.display().to_string(), common, false, None)?;
            eprintln!(
                "dataset: {}/dataset (lang=*/part-*.parquet, corpus/, rejects/, stats/, _xinstruct/manifest.json)",
                output.display()
            );
            eprintln!(
                "settings: {} (xinst run --input {1}/input --output {1}/dataset --config {0} continues the \
                 demo; add --sample-rate 1 for pairs of every document, --plan to see what a run would redo)",
                config_file.display(),
                output.display()
            );
            eprintln!(
                "note: the bundled Gemma-3-270M base model shows the mechanics (reverse instruction, checks, \
                 judging, refinement, the judge's self-check), not the quality a 7B+ generator and judge give: \
                 point [instruct] generator/evaluator at a larger model or an OpenAI-compatible server \
                 (docs/instruct.md)"
            );
            Ok(code)
        }
    }
}

/// What the demo changes in the defaults for its bundled 270M base model: the few-shot reverse
/// prompt (its worked examples make a small base model write question-shaped English, where the
/// authors' zero-shot prompt mostly gets echoes and fragments; docs/instruct.md), and the
/// judge's self-check on every evaluated pair (the sample is small). A config file that sets
/// either keeps its value.
fn demo_defaults(config: &mut Config) {
    use xinstruct_operators::instruct::prompt::{BuiltIn, TemplateChoice};
    use xinstruct_operators::instruct::{EvaluateConfig, ReverseConfig};
    if config.reverse_instruction.template == ReverseConfig::default().template {
        config.reverse_instruction.template = TemplateChoice::BuiltIn(BuiltIn::Fewshot);
    }
    if config.evaluate.self_check_rate == EvaluateConfig::default().self_check_rate {
        config.evaluate.self_check_rate = 1.0;
    }
}

fn run(input: String, common: Common, watch: bool, interval: Option<u64>) -> Result<i32> {
    let mut config = Config::load(common.config.as_deref())?;
    if let Some(w) = common.workers {
        config.run.workers = std::num::NonZeroUsize::new(w).context("--workers must be at least 1")?;
    }
    if let Some(n) = common.shards_per_epoch {
        config.run.shards_per_epoch = n;
    }
    if let Some(n) = common.epochs_in_flight {
        config.run.epochs_in_flight =
            std::num::NonZeroUsize::new(n).context("--epochs-in-flight must be at least 1")?;
    }
    if let Some(i) = interval {
        config.watch.interval_secs = std::num::NonZeroU64::new(i).context("--interval must be at least 1")?;
    }
    config.run.prune |= common.prune;
    if let Some(rate) = common.sample_rate {
        config.reverse_instruction.sample_rate = rate;
        config.validate().context("--sample-rate")?;
    }
    for op in &common.skip {
        if !config.pipeline.operators.contains(op) {
            bail!("--skip {}: not in this pipeline ([pipeline] operators)", op.as_str());
        }
    }
    config.pipeline.operators.retain(|op| !common.skip.contains(op));
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(Progress::default());
    let opts = RunOptions {
        input,
        output: common.output.clone(),
        config,
        cluster: Cluster { process: common.process, processes: common.processes, hostfile: common.hostfile },
        watch,
        stop: stop.clone(),
        force: common.force,
        progress: progress.clone(),
    };
    if common.plan {
        let plan = pipeline::plan_only(&opts)?;
        print!("{}", plan.render(opts.config.run.prune));
        return Ok(0);
    }
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                eprintln!("\nsecond interrupt: exiting without committing the current epoch");
                std::process::exit(130);
            }
            eprintln!("\ninterrupt: finishing the current epoch, then committing (Ctrl-C again to abort)");
        })
        .context("installing the Ctrl-C handler")?;
    }
    let leader = common.process == 0;
    let bar = (!common.no_progress && leader).then(|| spawn_progress(progress.clone()));
    let output = common.output.clone();
    let summary = pipeline::run(opts);
    if let Some((done, handle)) = bar {
        done.store(true, Ordering::SeqCst);
        let _ = handle.join();
    }
    let summary = summary?;
    if !leader {
        return Ok(0);
    }
    eprint!("{}", xinstruct::summary::render(&summary));
    save_stats(&summary, &output, common.stats_json.as_deref())?;
    Ok(summary.exit_code())
}

fn sql(
    statement: Option<String>,
    data: &str,
    file: Option<PathBuf>,
    query: Option<String>,
    list: bool,
    format: OutputFormat,
    allow_write: bool,
) -> Result<i32> {
    if list {
        for (name, text) in CANNED {
            println!("{name:<20} {}", xinstruct::sql::describe(text));
        }
        return Ok(0);
    }
    let text = match (statement, file, query) {
        (Some(s), None, None) => Some(s),
        (None, Some(f), None) => {
            Some(std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?)
        }
        (None, None, Some(name)) => Some(
            CANNED
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t.to_string())
                .with_context(|| format!("no canned query '{name}' (see xinst sql --list)"))?,
        ),
        (None, None, None) => None,
        _ => bail!("give one of: a statement, --file or --query"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let session = SqlSession::open(data, allow_write).await?;
        match text {
            Some(text) => {
                let batches = session.query(&text).await?;
                print!("{}", xinstruct::sql::render(&batches, format)?);
                if format == OutputFormat::Table {
                    println!();
                }
                Ok(0)
            }
            None => shell(&session, format).await,
        }
    })
}

/// The interactive SQL shell: line editing and history (rustyline); statements end with `;`.
async fn shell(session: &SqlSession, format: OutputFormat) -> Result<i32> {
    use rustyline::error::ReadlineError;
    let mut editor = rustyline::DefaultEditor::new()?;
    let history = xinstruct::models::cache_dir().join("sql_history.txt");
    let _ = editor.load_history(&history);
    eprintln!("xinstruct SQL: tables pairs, corpus, rejects, stats, shards, epochs; .queries lists canned queries, .quit exits");
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() { "xinst> " } else { "   ... " };
        match editor.readline(prompt) {
            Ok(line) => {
                let trimmed = line.trim();
                if buffer.is_empty() && matches!(trimmed, ".quit" | ".exit" | "\\q") {
                    break;
                }
                if buffer.is_empty() && trimmed == ".queries" {
                    for (name, text) in CANNED {
                        println!("{name:<20} {}", xinstruct::sql::describe(text));
                    }
                    continue;
                }
                if buffer.is_empty() && trimmed == ".tables" {
                    buffer.push_str("SHOW TABLES;");
                } else {
                    buffer.push_str(&line);
                    buffer.push('\n');
                }
                if !buffer.trim_end().ends_with(';') {
                    continue;
                }
                let statement = std::mem::take(&mut buffer);
                let _ = editor.add_history_entry(statement.trim());
                match session.query(&statement).await {
                    Ok(batches) => println!("{}", xinstruct::sql::render(&batches, format)?),
                    Err(e) => eprintln!("error: {e:#}"),
                }
            }
            Err(ReadlineError::Interrupted) => buffer.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(dir) = history.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = editor.save_history(&history);
    Ok(0)
}

fn models(action: ModelsAction) -> Result<i32> {
    use xinstruct::models;
    match action {
        ModelsAction::List => {
            for (name, present, path, description) in models::list() {
                println!(
                    "{name:<22} {:<8} {}  {description}",
                    if present { "cached" } else { "missing" },
                    path.display()
                );
            }
        }
        ModelsAction::Fetch { names } => {
            let names: Vec<String> = if names.is_empty() {
                models::MODELS.iter().map(|m| m.name.to_string()).collect()
            } else {
                names
            };
            for name in names {
                // A known name, or a Hugging Face Hub id (org/name) for users with the internet.
                let path = match models::spec(&name) {
                    Ok(spec) => models::fetch(spec)?,
                    Err(_) => models::resolve(&name)?,
                };
                println!("{name}: {}", path.display());
            }
        }
        ModelsAction::Verify => {
            for spec in models::MODELS {
                models::verify(spec)?;
                println!("{}: ok", spec.name);
            }
        }
    }
    Ok(0)
}

fn langid(config: Option<&Path>, verdict: bool) -> Result<i32> {
    let config = Config::load(config)?;
    let mut cfg = config.lang_id.clone();
    if cfg.backend == Backend::Fasttext && cfg.model.is_none() {
        cfg.model = Some(xinstruct::models::lid_model()?);
    }
    let identifier = LangIdentifier::new(&cfg).map_err(anyhow::Error::msg)?;
    let normalizer = Normalizer::new(&config.normalize);
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in stdin.lock().lines() {
        let line = line.context("reading stdin")?;
        let text = normalizer.normalize(&line).unwrap_or_default();
        let (label, conf) = match identifier.identify(&text) {
            Some(id) => (id.lang.to_string(), id.conf),
            None => ("und".to_string(), 0.0),
        };
        use std::io::Write;
        if verdict {
            let v = match normalizer.normalize(&line) {
                Err((reason, _)) => reason.to_string(),
                Ok(t) => {
                    identifier.check(&t).map(|_| "ok".to_string()).unwrap_or_else(|r| r.reason.to_string())
                }
            };
            writeln!(out, "{label}\t{conf:.4}\t{v}")?;
        } else {
            writeln!(out, "{label}\t{conf:.4}")?;
        }
    }
    Ok(0)
}

/// Writes the run stats into the dataset (`stats/run-<ms>.json`) and, if asked, a local file.
fn save_stats(summary: &RunSummary, output: &str, local: Option<&Path>) -> Result<()> {
    let json = serde_json::to_vec_pretty(summary)?;
    let out = Store::open(output, true)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    out.put(&rt, &format!("stats/run-{}.json", summary.started_at_unix_ms), json.clone())?;
    if let Some(path) = local {
        std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// A progress bar over the planned input bytes, with documents/s; hidden when stderr is not
/// a terminal.
fn spawn_progress(progress: Arc<Progress>) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let handle = std::thread::spawn(move || {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let started = Instant::now();
        let model_style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} model calls {msg} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        let mut on_model = false;
        progress.bar.store(true, Ordering::SeqCst);
        while !flag.load(Ordering::SeqCst) {
            for note in progress.take_notes() {
                bar.println(note);
            }
            let docs = progress.docs.load(Ordering::Relaxed);
            let (planned, read) =
                (progress.planned_bytes.load(Ordering::Relaxed), progress.bytes.load(Ordering::Relaxed));
            let (asked, answered) = (
                progress.model_requests.load(Ordering::Relaxed),
                progress.model_done.load(Ordering::Relaxed),
            );
            // Once the input is read, the bar follows the model's work (the long part).
            if read >= planned && asked > answered && !on_model {
                on_model = true;
                bar.set_style(model_style.clone());
                bar.reset_eta();
            }
            if on_model {
                bar.set_length(asked);
                bar.set_position(answered);
                let pool = progress.generators.pool_line().map(|p| format!(" {p}")).unwrap_or_default();
                bar.set_message(match progress.generators.outage() {
                    Some(down) => format!("({docs} docs read) {down}: waiting for it"),
                    None => format!("({docs} docs read){pool}"),
                });
            } else {
                bar.set_length(planned);
                bar.set_position(read);
                bar.set_message(format!(
                    "{}/{} shards, {} docs, {:.0} docs/s{}",
                    progress.shards.load(Ordering::Relaxed),
                    progress.planned_shards.load(Ordering::Relaxed),
                    docs,
                    docs as f64 / started.elapsed().as_secs_f64().max(1e-3),
                    if asked > 0 { format!(", model {answered}/{asked}") } else { String::new() }
                ));
                if let Some(down) = progress.generators.outage() {
                    bar.set_message(format!("{down}: waiting for it"));
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bar.finish_and_clear();
        progress.bar.store(false, Ordering::SeqCst);
        for note in progress.take_notes() {
            eprintln!("{note}");
        }
    });
    (done, handle)
}

fn generate(a: GenerateArgs) -> Result<i32> {
    use xinstruct_operators::generate::{EngineConfig, GenRequest, Message, Prompt, SamplingParams};
    let engine = EngineConfig { device: a.device.clone(), ..EngineConfig::default() };
    let started = Instant::now();
    let gen = xinstruct::generation::open(&a.model, &engine, &Default::default())?;
    let loaded = started.elapsed();
    let prompt = if a.chat {
        Prompt::Chat(vec![Message { role: "user".into(), content: a.prompt.clone() }])
    } else {
        Prompt::Text(a.prompt.clone())
    };
    let params = SamplingParams {
        temperature: a.temperature,
        top_p: a.top_p,
        top_k: a.top_k,
        repeat_penalty: a.repeat_penalty,
        no_repeat_ngram_size: a.no_repeat_ngram_size,
        max_new_tokens: a.max_new_tokens,
        stop: a.stop.clone(),
        seed: a.seed,
        ..SamplingParams::default()
    };
    let t = Instant::now();
    let out = gen.generate(vec![GenRequest::new(prompt, params)]).pop().context("no result")?;
    let c = out.map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", c.text);
    if a.verbose {
        let s = t.elapsed().as_secs_f64();
        eprintln!(
            "model {} ({}) loaded in {:.2}s; prompt {} tokens{}, generated {} tokens in {:.2}s ({:.1} tok/s), finish: {}",
            gen.name(),
            gen.fingerprint(),
            loaded.as_secs_f64(),
            c.prompt_tokens,
            if c.truncated_prompt_tokens > 0 { format!(" ({} truncated)", c.truncated_prompt_tokens) } else { String::new() },
            c.completion_tokens,
            s,
            c.completion_tokens as f64 / s,
            c.finish.as_str()
        );
    }
    Ok(0)
}
