//! The candle engine on the real Gemma-3-270M Q4_K_M GGUF (and SmolLM2 for the llama path).

use std::sync::{Arc, OnceLock};
use xinstruct::generation::open_local;
use xinstruct_operators::generate::{
    CandleGenerator, EngineConfig, GenError, GenRequest, Generator, Message, Prompt, SamplingParams,
};

/// One engine per max_batch, shared by the tests of this module (loading takes seconds).
fn gemma(max_batch: usize) -> Arc<CandleGenerator> {
    static ONE: OnceLock<Arc<CandleGenerator>> = OnceLock::new();
    static MANY: OnceLock<Arc<CandleGenerator>> = OnceLock::new();
    let cell = if max_batch == 1 { &ONE } else { &MANY };
    cell.get_or_init(|| {
        open_local("gemma-3-270m", &EngineConfig { max_batch, ..EngineConfig::default() })
            .expect("load gemma-3-270m")
    })
    .clone()
}

fn text(p: &str, max_new_tokens: usize) -> GenRequest {
    GenRequest::new(Prompt::Text(p.to_string()), SamplingParams::greedy(max_new_tokens))
}

/// Mixed lengths and languages: the reverse-instruction prompt over sample responses.
fn prompts() -> Vec<String> {
    let texts = [
        "Kila mtu ana haki ya kupumzika na kupata starehe.",
        "Jokaisella on oikeus lepoon ja vapaa-aikaan, niihin luettuina työajan kohtuullinen rajoittaminen ja määräaikainen palkallinen loma.",
        "ทุกคนมีสิทธิในการพักผ่อนและเวลาว่าง",
        "Herkes, kanun önünde eşittir ve farksız olarak kanunun eşit korumasından istifade hakkını haizdir. Herkesin bu beyannameye aykırı her türlü ayırdedici muameleye karşı ve böyle bir ayırdedici muamele için yapılacak her türlü kışkırtmaya karşı eşit korunma hakkı vardır.",
        "Mọi người đều có quyền tự do đi lại và cư trú trong phạm vi lãnh thổ của mỗi quốc gia.",
    ];
    texts
        .iter()
        .map(|t| {
            format!(
                "Below is a text that describes a candidate output. Write an English instruction that can take the given text as an appropriate answer.\n\n### Text:\n{t}\n\n### English Instruction:"
            )
        })
        .collect()
}

/// Greedy continuation of "The capital of France is", 12 tokens, recorded from this engine.
/// llama.cpp on the same GGUF gives " the capital of the country of France. It is the largest":
/// the first 4 tokens agree; after that the two quantize activations differently (candle's
/// AVX-512 kernel: 256-value Q8_K blocks over the Q8_0-requantized weights; llama.cpp: 32-value
/// Q8_0 blocks over Q5_0), and a 270M model's near-ties go either way (docs/benchmarks.md).
/// The f32 products (attention) use gemm's AVX-512 kernels since the `x86-v4` feature went on
/// (session 5); with its 256-bit kernels the 5th token was " country" instead of " French".
const FRANCE: &str = " the capital of the French Republic. It is the largest city";
/// The first tokens every kernel choice gives, and llama.cpp too.
const FRANCE_PREFIX: &str = " the capital of the";

#[test]
fn greedy_output_is_stable() {
    let out = gemma(1).generate(vec![text("The capital of France is", 12)]).pop().unwrap().unwrap();
    // Recorded from this engine (Q5_0 matrices requantized to Q8_0, see model.rs); llama.cpp's
    // greedy continuation of the same GGUF starts the same way (docs/benchmarks.md).
    // The recording is of the AVX-512 VNNI kernels (this project's machines); other CPUs take
    // other candle and gemm kernels, whose rounding may part ways later, but not in the first
    // 4 tokens.
    if std::is_x86_feature_detected!("avx512vnni") {
        assert_eq!(out.text, FRANCE);
    } else {
        assert!(out.text.starts_with(FRANCE_PREFIX), "{out:?}");
    }
    assert_eq!(out.completion_tokens, 12);
    assert_eq!(out.finish.as_str(), "length");
    assert_eq!(out.prompt_tokens, 6, "BOS + 5 tokens");
}

/// Shared-prefix reuse is exact: prompts that share a few-shot header (4 blocks of 64 tokens)
/// give the same greedy tokens with the prefix cache as without it, one at a time and batched,
/// while the cache spares the shared blocks' prefill.
#[test]
fn prefix_reuse_gives_the_same_tokens_and_skips_the_shared_prefill() {
    let texts: Vec<String> = prompts()
        .iter()
        .map(|p| p.split("### Text:\n").nth(1).unwrap().split("\n\n").next().unwrap().to_string())
        .collect();
    let header = format!(
        "Below is a text that describes a candidate output. Write an English instruction that can take the \
         given text as an appropriate answer.\n\n### Text:\n{}\n\n### English Instruction: Describe the right to \
         rest and leisure.\n\n### Text:\n{}\n\n### English Instruction: What does the declaration say about \
         equality before the law?\n\n### Text:\n{}\n\n### English Instruction: Which freedom of movement does \
         everyone have?\n\n### Text:\n{}\n\n### English Instruction: Explain the right to paid holidays.\n\n",
        texts[0], texts[3], texts[4], texts[1]
    );
    let reqs: Vec<GenRequest> = texts
        .iter()
        .map(|t| text(&format!("{header}### Text:\n{t}\n\n### English Instruction:"), 20))
        .collect();
    let engine = |mib: usize, max_batch: usize| {
        open_local(
            "gemma-3-270m",
            &EngineConfig { max_batch, prefix_cache_mib: mib, ..EngineConfig::default() },
        )
        .unwrap()
    };
    let one_by_one = |g: &CandleGenerator| -> Vec<xinstruct_operators::generate::Completion> {
        reqs.iter().map(|r| g.generate(vec![r.clone()]).pop().unwrap().unwrap()).collect()
    };
    let plain = one_by_one(&engine(0, 1));
    assert!(plain.iter().all(|c| c.cached_prompt_tokens == 0));
    assert!(plain[0].prompt_tokens > 4 * 64 + 20, "the header spans 4 blocks: {}", plain[0].prompt_tokens);

    let cached = engine(256, 1);
    let reused = one_by_one(&cached);
    let texts_of = |v: &[xinstruct_operators::generate::Completion]| {
        v.iter().map(|c| c.text.clone()).collect::<Vec<_>>()
    };
    assert_eq!(texts_of(&reused), texts_of(&plain), "the same tokens with the cache");
    assert_eq!(reused[0].cached_prompt_tokens, 0, "the first prompt finds nothing");
    for c in &reused[1..] {
        assert!(c.cached_prompt_tokens >= 4 * 64, "the header's blocks came from the cache: {c:?}");
    }
    let saved = cached.stats.prompt_tokens_cached.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(saved, reused.iter().map(|c| c.cached_prompt_tokens as u64).sum::<u64>());

    // Batched, next to each other, after one prompt warmed the cache: the same tokens again.
    let batched = engine(256, 4);
    batched.generate(vec![reqs[0].clone()]);
    let out: Vec<_> = batched.generate(reqs.clone()).into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(texts_of(&out), texts_of(&plain));
    assert!(out.iter().all(|c| c.cached_prompt_tokens >= 4 * 64), "{out:?}");
}

#[test]
fn batched_greedy_equals_one_by_one() {
    let reqs: Vec<GenRequest> = prompts().iter().map(|p| text(p, 24)).collect();
    let single: Vec<String> =
        reqs.iter().map(|r| gemma(1).generate(vec![r.clone()]).pop().unwrap().unwrap().text).collect();
    let batched: Vec<String> = gemma(4).generate(reqs.clone()).into_iter().map(|r| r.unwrap().text).collect();
    assert_eq!(batched, single);
    assert!(single.iter().all(|s| !s.trim().is_empty()), "{single:?}");
    assert!(
        gemma(4).stats.seq_steps.load(std::sync::atomic::Ordering::Relaxed)
            > gemma(4).stats.steps.load(std::sync::atomic::Ordering::Relaxed),
        "sequences shared steps"
    );
}

#[test]
fn same_seed_same_sample_and_stop_strings_cut() {
    let params = SamplingParams { max_new_tokens: 16, seed: 7, ..SamplingParams::default() };
    let req = GenRequest::new(Prompt::Text("Once upon a time".into()), params.clone());
    let a = gemma(4).generate(vec![req.clone(), req.clone()]);
    let (a0, a1) = (a[0].clone().unwrap(), a[1].clone().unwrap());
    assert_eq!(a0, a1, "same seed, same output, even in one batch");
    let other = GenRequest { params: SamplingParams { seed: 8, ..params }, ..req };
    let b = gemma(4).generate(vec![other]).pop().unwrap().unwrap();
    assert_ne!(a0.text, b.text, "another seed samples differently");

    let mut stop = text("The capital of France is", 12);
    stop.params.stop = vec![" of".into()];
    let c = gemma(4).generate(vec![stop]).pop().unwrap().unwrap();
    assert_eq!(c.text, " the capital");
    assert_eq!(c.finish.as_str(), "stop");
}

#[test]
fn empty_and_overlong_prompts() {
    let long = "word ".repeat(6000);
    let out = gemma(4).generate(vec![text("   ", 4), text(&long, 4), text("Hello", 2)]);
    assert_eq!(out[0], Err(GenError::EmptyPrompt));
    let c = out[1].clone().expect("a long prompt is truncated, not failed");
    assert!(c.truncated_prompt_tokens > 1000, "{c:?}");
    assert!(c.prompt_tokens + 4 <= EngineConfig::default().max_context);
    assert!(out[2].is_ok());
}

#[test]
fn a_prompt_with_a_token_outside_the_embedding_fails_alone() {
    // Gemma 3's tokenizer knows `<image_soft_token>` (id 262144); its embedding has 262,144
    // rows. The prompt fails on its own; the batch it came with is answered as if alone.
    let ok: Vec<GenRequest> = prompts().iter().take(3).map(|p| text(p, 8)).collect();
    let mut batch = ok.clone();
    batch.insert(1, text("Describe the picture: <image_soft_token> in one line.", 8));
    let out = gemma(4).generate(batch);
    match &out[1] {
        Err(e @ GenError::InvalidPrompt(m)) => {
            assert!(m.contains("262144") && m.contains("image_soft_token"), "{m}");
            assert!(!e.transient(), "the document's fault: a reject, not work awaiting the model");
        }
        other => panic!("{other:?}"),
    }
    let alone: Vec<String> =
        ok.iter().map(|r| gemma(1).generate(vec![r.clone()]).pop().unwrap().unwrap().text).collect();
    let with_it: Vec<String> =
        [0, 2, 3].iter().map(|&i| out[i].clone().expect("the others are answered").text).collect();
    assert_eq!(with_it, alone);
    // The stages defuse exactly such tokens in document text: the tokenizer names them.
    let special = gemma(4).special_tokens();
    for t in ["<image_soft_token>", "<start_of_turn>", "<end_of_turn>"] {
        assert!(special.iter().any(|s| s == t), "{t} in {} special tokens", special.len());
    }
}

#[test]
fn chat_prompt_on_smollm2_llama_gguf_with_its_own_vocabulary() {
    let gen = open_local("smollm2-135m-instruct", &EngineConfig::default()).expect("load smollm2");
    let req = GenRequest {
        prompt: Prompt::Chat(vec![Message {
            role: "user".into(),
            content: "What is the capital of France?".into(),
        }]),
        params: SamplingParams::greedy(24),
        affinity: None,
    };
    let out = gen.generate(vec![req]).pop().unwrap().unwrap();
    assert!(out.text.contains("Paris"), "{out:?}");
    assert_eq!(gen.arch, "llama");
}

#[test]
fn bad_model_files_get_clear_errors() {
    let dir = crate::common::tempdir();
    let err = |p: &std::path::Path| match CandleGenerator::load(p, "x", &EngineConfig::default()) {
        Ok(_) => panic!("{} loaded", p.display()),
        Err(e) => e.to_string(),
    };
    assert!(err(&dir.path().join("nope")).contains("no such model file or directory"));
    assert!(err(dir.path()).contains("no .gguf file and no config.json"));
    // A snapshot without its tokenizer.
    std::fs::write(dir.path().join("config.json"), r#"{"model_type":"llama"}"#).unwrap();
    assert!(err(dir.path()).contains("tokenizer.json is missing"));
    // A GGUF of an architecture we do not run (a header with general.architecture = "bert").
    let gguf = dir.path().join("bert.gguf");
    let mut f = std::fs::File::create(&gguf).unwrap();
    use candle_core::quantized::gguf_file;
    let md = [("general.architecture", &gguf_file::Value::String("bert".into()))];
    gguf_file::write(&mut f, &md, &[]).unwrap();
    drop(f);
    let e = err(&gguf);
    assert!(e.contains("architecture 'bert' is not supported"), "{e}");
    // A tokenizer.json from another model beside a GGUF: Gemma's 262k-token vocabulary
    // with SmolLM2's 49k-row embedding.
    let mixed = dir.path().join("mixed");
    std::fs::create_dir(&mixed).unwrap();
    let smol = xinstruct::models::ensure("smollm2-135m-instruct").unwrap().join("model.gguf");
    std::fs::copy(&smol, mixed.join("model.gguf")).unwrap();
    let gemma_tok = xinstruct::models::ensure("gemma-3-270m").unwrap().join("tokenizer.json");
    std::fs::copy(&gemma_tok, mixed.join("tokenizer.json")).unwrap();
    let e = err(&mixed);
    assert!(e.contains("mismatched files") && e.contains("tokenizer.json"), "{e}");
    // A truncated GGUF.
    let cut = dir.path().join("cut.gguf");
    let bytes = std::fs::read(xinstruct::models::ensure("smollm2-135m-instruct").unwrap().join("model.gguf"))
        .unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert!(err(&cut).contains("cut.gguf"), "names the file");
}

/// `xinst serve` on a free loopback port; killed on drop.
pub(crate) struct Served {
    child: std::process::Child,
    pub(crate) url: String,
}

impl Served {
    /// Kills the server (SIGKILL): its connections drop, new ones are refused.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The server's `/metrics`: (requests in flight now, the most at once, answered).
    pub(crate) fn metrics(&self) -> (u64, u64, u64) {
        let addr = self.url.trim_start_matches("http://").trim_end_matches("/v1");
        let (status, body) = http(addr, "GET /metrics HTTP/1.0\r\n\r\n");
        assert_eq!(status, 200, "{body}");
        let value = |name: &str| -> u64 {
            body.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {body}"))
        };
        (
            value("xinst_requests_in_flight"),
            value("xinst_requests_in_flight_max"),
            value("xinst_requests_answered_total"),
        )
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn serve() -> Served {
    use std::io::BufRead;
    let mut child = crate::common::xinst()
        .args(["serve", "--model", "gemma-3-270m", "--addr", "127.0.0.1:0", "--max-batch", "4"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start xinst serve");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("serve prints its address");
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).expect("address").to_string();
    Served { child, url }
}

fn client(url: &str, retries: u32) -> OpenAiGenerator {
    OpenAiGenerator::new(OpenAiConfig {
        base_url: url.to_string(),
        model: "gemma-3-270m".into(),
        retries,
        backoff_ms: 50,
        timeout_secs: 120,
        ..OpenAiConfig::default()
    })
    .unwrap()
}

/// A fault injector in front of the real server: answers the first `fail` requests with 429
/// (Retry-After: 0), requests whose prompt contains "GARBAGE" with 200 and a non-JSON body,
/// and forwards everything else.
fn flaky_proxy(upstream: &str, fail: usize) -> String {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let addr = match server.server_addr() {
        tiny_http::ListenAddr::IP(a) => a.to_string(),
        _ => unreachable!(),
    };
    let upstream = upstream.trim_end_matches("/v1").trim_start_matches("http://").to_string();
    std::thread::spawn(move || {
        let mut seen = 0;
        for mut req in server.incoming_requests() {
            seen += 1;
            let mut body = String::new();
            req.as_reader().read_to_string(&mut body).unwrap();
            if seen <= fail {
                let h = tiny_http::Header::from_bytes("Retry-After", "0").unwrap();
                let _ = req.respond(
                    tiny_http::Response::from_string("slow down").with_status_code(429).with_header(h),
                );
                continue;
            }
            if body.contains("GARBAGE") {
                let _ = req.respond(tiny_http::Response::from_string("<html>oops</html>"));
                continue;
            }
            forward(&upstream, req, &body);
        }
    });
    format!("http://{addr}/v1")
}

/// Forwards a proxied POST to `upstream` (`host:port`) with a plain HTTP/1.0 exchange and
/// answers `req` with the upstream's status and body.
pub(crate) fn forward(upstream: &str, req: tiny_http::Request, body: &str) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(upstream).unwrap();
    write!(
        s,
        "POST {} HTTP/1.0\r\nHost: {upstream}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        req.url(),
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, payload) = resp.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let _ = req.respond(tiny_http::Response::from_string(payload).with_status_code(status));
}

use xinstruct_operators::generate::{OpenAiConfig, OpenAiGenerator};

#[test]
fn openai_client_against_xinst_serve() {
    let served = serve();
    let http = client(&served.url, 0);
    let prompts: Vec<GenRequest> = prompts().iter().take(3).map(|p| text(p, 16)).collect();
    let over_http: Vec<_> = http.generate(prompts.clone()).into_iter().map(|r| r.unwrap().text).collect();
    let local: Vec<_> = gemma(4).generate(prompts).into_iter().map(|r| r.unwrap().text).collect();
    assert_eq!(over_http, local, "the server runs the same engine: same greedy tokens");

    let chat = GenRequest {
        prompt: Prompt::Chat(vec![Message { role: "user".into(), content: "Say hello.".into() }]),
        params: SamplingParams::greedy(8),
        affinity: None,
    };
    let c = http.generate(vec![chat]).pop().unwrap().unwrap();
    assert!(c.completion_tokens > 0 && c.prompt_tokens > 5, "{c:?}");
    assert_eq!(http.generate(vec![text(" ", 4)]).pop().unwrap(), Err(GenError::EmptyPrompt));

    // 429 twice, then through: retried with backoff; a non-JSON reply fails that record only.
    let flaky = client(&flaky_proxy(&served.url, 2), 3);
    let out = flaky.generate(vec![text("The capital of France is", 12), text("GARBAGE in", 4)]);
    let local = gemma(4).generate(vec![text("The capital of France is", 12)]).pop().unwrap().unwrap();
    assert_eq!(out[0].as_ref().unwrap().text, local.text);
    match &out[1] {
        Err(GenError::BadResponse(m)) => assert!(m.contains("not JSON"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(flaky.attempts.load(std::sync::atomic::Ordering::Relaxed) >= 4);
    // Without retries the 429 surfaces as an HTTP error naming the status.
    let impatient = client(&flaky_proxy(&served.url, 1), 0);
    match impatient.generate(vec![text("Hi", 2)]).pop().unwrap() {
        Err(GenError::Http { status: 429, .. }) => {}
        other => panic!("{other:?}"),
    }
}

/// A pool of two real servers: requests spread over both, each server's limit holds (measured
/// at the servers), and a server killed mid-run loses nothing: its requests fail over to the
/// other, whose answers equal the pool's before the kill (greedy decoding, one engine).
#[test]
fn a_pool_spreads_requests_holds_each_servers_limit_and_loses_nothing_when_one_is_killed() {
    let (mut a, b) = (serve(), serve());
    let pool = Arc::new(
        OpenAiGenerator::pool(
            OpenAiConfig {
                model: "gemma-3-270m".into(),
                concurrency: 2,
                retries: 1,
                backoff_ms: 50,
                breaker_failures: 2,
                ..OpenAiConfig::default()
            },
            vec![a.url.clone(), b.url.clone()],
        )
        .unwrap(),
    );
    let requests = |n: usize, affinity: bool| -> Vec<GenRequest> {
        (0..n)
            .map(|i| GenRequest {
                affinity: affinity.then_some(i as u64 % 5),
                ..text(&format!("Item {i}: the best thing about the number {i} is"), 8)
            })
            .collect()
    };
    // Two callers at once, as two generate operators would be.
    let run = |reqs: Vec<GenRequest>| -> Vec<String> {
        let half = reqs.len() / 2;
        let (first, second) = (reqs[..half].to_vec(), reqs[half..].to_vec());
        let callers: Vec<_> = [first, second]
            .into_iter()
            .map(|part| {
                let pool = pool.clone();
                std::thread::spawn(move || pool.generate(part))
            })
            .collect();
        callers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .map(|r| r.expect("every request answered").text)
            .collect()
    };
    let want = run(requests(24, false));
    let (ma, mb) = (a.metrics(), b.metrics());
    assert_eq!(ma.2 + mb.2, 24, "{ma:?} {mb:?}");
    assert!(ma.2 >= 6 && mb.2 >= 6, "least-outstanding routing spreads the requests: {ma:?} {mb:?}");
    assert!(ma.1 <= 2 && mb.1 <= 2, "at most concurrency = 2 in flight at each server: {ma:?} {mb:?}");
    assert_eq!(pool.endpoints().iter().map(|e| e.answered).sum::<u64>(), 24);

    // Again with document keys, and server a killed once it has answered two more.
    let before = ma.2;
    let killer = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        while a.metrics().2 < before + 2 && started.elapsed() < std::time::Duration::from_secs(120) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        a.kill();
        a
    });
    let got = run(requests(24, true));
    let _a = killer.join().unwrap();
    assert_eq!(got, want, "nothing lost and nothing changed by the fail-over");
    let states = pool.endpoints();
    assert!(states[0].failed >= 1, "requests out at a when it died failed there: {states:?}");
    assert!(b.metrics().2 > mb.2 + 12, "b took over a's share: {:?}", b.metrics());
    assert!(b.metrics().1 <= 2, "b's limit held through the fail-over: {:?}", b.metrics());
}

#[test]
fn unreachable_server_is_a_clear_per_record_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let out = client(&url, 1).generate(vec![text("Hi", 2), text("Ho", 2)]);
    for r in out {
        match r {
            Err(e @ GenError::Unreachable { .. }) => assert!(e.to_string().contains(&url), "{e}"),
            other => panic!("{other:?}"),
        }
    }
    let err =
        xinstruct::generation::open(&url, &EngineConfig::default(), &OpenAiConfig::default()).err().unwrap();
    assert!(err.to_string().contains("unreachable"), "{err}");
}

mod operator {
    use super::*;
    use differential_dataflow::input::Input;
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;
    use timely::dataflow::operators::{Inspect, Probe};
    use timely::dataflow::ProbeHandle;
    use xinstruct_operators::generate::{GenResult, GenerateConfig, GenerateExt, GenerateOp, MemoCache};
    use xinstruct_operators::stats::StatsRegistry;
    use xinstruct_operators::{Doc, Epoch, Origin};

    fn doc(i: usize, text: &str) -> Doc {
        Doc {
            id: format!("d{i}"),
            text: text.to_string(),
            url: None,
            source: Origin { shard: "s.jsonl".into(), offset: i as u64 },
            lang: None,
            meta: BTreeMap::new(),
            pair: None,
            born: None,
        }
    }

    type Out = Vec<(String, GenResult, isize)>;

    /// Feeds `epochs` of (doc, diff) through `generate` and returns the output and the
    /// operator's counters.
    fn run(op: GenerateOp, epochs: Vec<Vec<(Doc, isize)>>) -> (Out, BTreeMap<String, u64>, u64) {
        timely::execute_directly(move |worker| {
            let stats = StatsRegistry::default();
            let got: Rc<RefCell<Out>> = Rc::default();
            let probe = ProbeHandle::new();
            let sink = got.clone();
            let mut input = worker.dataflow::<Epoch, _, _>(|scope| {
                let (input, docs) = scope.new_collection::<Doc, isize>();
                docs.generate_named("reverse", &op, &stats, |d: &Doc| {
                    if d.text.is_empty() {
                        return Err(("no_text", format!("{} has no text", d.id)));
                    }
                    Ok(GenRequest::new(
                        Prompt::Text(format!("Text: {}\nQuestion:", d.text)),
                        SamplingParams::greedy(8),
                    ))
                })
                .inner
                .inspect(move |((d, r), _t, diff)| sink.borrow_mut().push((d.id.clone(), r.clone(), *diff)))
                .probe_with(&probe);
                input
            });
            for (e, batch) in epochs.into_iter().enumerate() {
                input.advance_to(e as Epoch);
                for (d, diff) in batch {
                    input.update(d, diff);
                }
            }
            let end = input.time() + 1;
            input.advance_to(end);
            input.flush();
            while probe.less_than(&end) {
                worker.step_or_park(Some(std::time::Duration::from_millis(50)));
            }
            let s = stats.take().remove("reverse").unwrap_or_default();
            let dropped = s.dropped_total();
            let out = got.borrow().clone();
            (out, s.counters, dropped)
        })
    }

    fn op(stage: &str, memo: &Arc<MemoCache>) -> GenerateOp {
        GenerateOp {
            generator: gemma(4),
            memo: Some(memo.clone()),
            stage: stage.into(),
            config: GenerateConfig { batch_size: 2, max_in_flight: 4 },
            progress: None,
        }
    }

    /// While generation for epoch 0 is still running, the same worker carries later epochs
    /// through the other operators: the model holds only its own epochs' capabilities.
    #[test]
    fn a_slow_model_does_not_stall_other_operators() {
        let (other_done, gen_done) = timely::execute_directly(move |worker| {
            let stats = StatsRegistry::default();
            let (gen_probe, other_probe) = (ProbeHandle::new(), ProbeHandle::new());
            let op = GenerateOp {
                generator: gemma(4),
                memo: None,
                stage: "slow@1".into(),
                config: GenerateConfig { batch_size: 2, max_in_flight: 2 },
                progress: None,
            };
            let mut input = worker.dataflow::<Epoch, _, _>(|scope| {
                let (input, docs) = scope.new_collection::<Doc, isize>();
                docs.clone()
                    .generate_named("slow", &op, &stats, |d: &Doc| {
                        let mut params = SamplingParams::greedy(48);
                        params.ignore_eos = true;
                        Ok(GenRequest::new(Prompt::Text(d.text.clone()), params))
                    })
                    .inner
                    .probe_with(&gen_probe);
                docs.inner.probe_with(&other_probe);
                input
            });
            for i in 0..4 {
                input.insert(doc(i, "Write a long story about a lighthouse keeper."));
            }
            input.advance_to(1);
            input.insert(doc(9, "later"));
            input.advance_to(5);
            input.flush();
            let start = std::time::Instant::now();
            let (mut other_done, mut gen_done) = (None, None);
            while gen_done.is_none() {
                worker.step_or_park(Some(std::time::Duration::from_millis(5)));
                if other_done.is_none() && !other_probe.less_than(&5) {
                    other_done = Some(start.elapsed());
                }
                if !gen_probe.less_than(&1) {
                    gen_done = Some(start.elapsed());
                }
            }
            (other_done.expect("the other branch finished"), gen_done.unwrap())
        });
        assert!(
            other_done * 4 < gen_done,
            "epochs 0-4 passed the other operators at {other_done:?}, generation for epoch 0 ended at {gen_done:?}"
        );
    }

    #[test]
    fn memoized_rerun_makes_no_model_calls_and_a_template_change_recomputes() {
        let dir = crate::common::tempdir();
        let memo = Arc::new(MemoCache::open(&dir.path().join("memo.redb")).unwrap());
        let docs: Vec<Doc> =
            ["Kila mtu ana haki.", "Herkes eşittir.", "", "Mọi người đều có quyền.", "Jokaisella on oikeus."]
                .iter()
                .enumerate()
                .map(|(i, t)| doc(i, t))
                .collect();
        let epochs = || {
            vec![
                docs[..2].iter().map(|d| (d.clone(), 1)).collect(),
                docs[2..].iter().map(|d| (d.clone(), 1)).collect(),
            ]
        };
        let (first, c1, dropped) = run(op("reverse@v1", &memo), epochs());
        assert_eq!(first.len(), 5, "every document comes out once: {first:?}");
        assert_eq!(dropped, 0, "the stage, not generate, decides what is a reject");
        assert_eq!(c1.get("no_prompt"), Some(&1), "the empty document fails with its reason");
        assert!(first.iter().any(|(id, r, _)| id == "d2" && !r.ok && r.reason == "no_text"));
        assert_eq!(c1.get("model_calls"), Some(&4));
        assert!(first.iter().filter(|(_, r, _)| r.ok).all(|(_, r, _)| r.completion_tokens > 0));

        // Same input, same stage: all from the cache.
        let (second, c2, _) = run(op("reverse@v1", &memo), epochs());
        assert_eq!(c2.get("model_calls"), None, "{c2:?}");
        assert_eq!(c2.get("memo_hits"), Some(&4));
        let sorted = |mut v: Out| {
            v.sort();
            v
        };
        assert_eq!(sorted(second), sorted(first.clone()));

        // A new template version misses; the old stage's entries stay.
        let (_, c3, _) = run(op("reverse@v2", &memo), epochs());
        assert_eq!(c3.get("model_calls"), Some(&4));
        assert_eq!(memo.len(), 8);

        // Insert then retract in a later epoch: the retraction replays the same result.
        let (out, c4, _) =
            run(op("reverse@v1", &memo), vec![vec![(docs[0].clone(), 1)], vec![(docs[0].clone(), -1)]]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].1, out[1].1);
        assert_eq!(out[0].2 + out[1].2, 0);
        assert_eq!(c4.get("model_calls"), None);
    }
}

/// The synthetic-weights bench's gemma3-270m (`--synthetic`) has the bundled GGUF's shape: as
/// many parameters as the GGUF has tensor elements (the larger shapes are checked against
/// published counts in model.rs).
#[test]
fn synthetic_gemma3_270m_has_the_bundled_ggufs_parameter_count() {
    use candle_core::quantized::gguf_file;
    let src = xinstruct::models::ensure("gemma-3-270m").unwrap();
    let ct = gguf_file::Content::read(&mut std::fs::File::open(src.join("model.gguf")).unwrap()).unwrap();
    let elements: usize = ct.tensor_infos.values().map(|t| t.shape.elem_count()).sum();
    let shape = xinstruct_operators::generate::model::synthetic_shape("gemma3-270m").unwrap();
    assert_eq!(shape.parameters(), elements);
}

/// A Hugging Face gemma3 snapshot built from the GGUF's own weights (dequantized to f32, names
/// mapped, norms back to HF's `w` from GGUF's `1 + w`) loads through the safetensors path and
/// continues the prompt like the GGUF does (the first tokens; the GGUF path quantizes).
#[test]
fn safetensors_snapshot_agrees_with_the_gguf() {
    use candle_core::quantized::gguf_file;
    use candle_core::Device;
    let src = xinstruct::models::ensure("gemma-3-270m").unwrap();
    let mut f = std::fs::File::open(src.join("model.gguf")).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    let hf_name = |n: &str| -> String {
        let map = |s: &str| match s {
            "attn_q.weight" => "self_attn.q_proj.weight",
            "attn_k.weight" => "self_attn.k_proj.weight",
            "attn_v.weight" => "self_attn.v_proj.weight",
            "attn_output.weight" => "self_attn.o_proj.weight",
            "attn_q_norm.weight" => "self_attn.q_norm.weight",
            "attn_k_norm.weight" => "self_attn.k_norm.weight",
            "attn_norm.weight" => "input_layernorm.weight",
            "post_attention_norm.weight" => "post_attention_layernorm.weight",
            "ffn_norm.weight" => "pre_feedforward_layernorm.weight",
            "post_ffw_norm.weight" => "post_feedforward_layernorm.weight",
            "ffn_gate.weight" => "mlp.gate_proj.weight",
            "ffn_up.weight" => "mlp.up_proj.weight",
            "ffn_down.weight" => "mlp.down_proj.weight",
            other => panic!("unmapped {other}"),
        };
        match n {
            "token_embd.weight" => "model.embed_tokens.weight".into(),
            "output_norm.weight" => "model.norm.weight".into(),
            _ => {
                let rest = n.strip_prefix("blk.").unwrap();
                let (layer, tail) = rest.split_once('.').unwrap();
                format!("model.layers.{layer}.{}", map(tail))
            }
        }
    };
    let mut tensors = std::collections::HashMap::new();
    let names: Vec<String> = ct.tensor_infos.keys().cloned().collect();
    for name in names {
        let t = ct.tensor(&mut f, &name, &Device::Cpu).unwrap().dequantize(&Device::Cpu).unwrap();
        let t = if name.ends_with("norm.weight") { t.affine(1.0, -1.0).unwrap() } else { t };
        tensors.insert(hf_name(&name), t);
    }
    let dir = crate::common::tempdir();
    candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors")).unwrap();
    drop(tensors);
    std::fs::copy(src.join("tokenizer.json"), dir.path().join("tokenizer.json")).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type": "gemma3_text", "hidden_size": 640, "num_attention_heads": 4,
            "num_key_value_heads": 1, "num_hidden_layers": 18, "head_dim": 256, "vocab_size": 262144,
            "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
            "sliding_window": 512, "sliding_window_pattern": 6, "query_pre_attn_scalar": 256,
            "max_position_embeddings": 32768, "eos_token_id": [1, 106]}"#,
    )
    .unwrap();
    let st = CandleGenerator::load(dir.path(), "gemma-hf", &EngineConfig::default()).expect("load snapshot");
    assert_eq!(st.arch, "gemma3");
    // 4 tokens: the 5th is a near-tie (" country" / " French") that f32 weights and the GGUF's
    // quantized ones can break either way.
    let from_st = st.generate(vec![text("The capital of France is", 4)]).pop().unwrap().unwrap();
    let from_gguf = gemma(1).generate(vec![text("The capital of France is", 4)]).pop().unwrap().unwrap();
    assert_eq!(from_st.text, from_gguf.text);
    assert_eq!(from_st.text, FRANCE_PREFIX);
}

/// The in-process judge held to the verdict format: Gemma-3-270M, greedy, over a real document
/// of each of the paper's ten languages with a fitting and an unrelated instruction — every
/// answer parses, with a label and a score.
#[test]
fn constrained_verdicts_from_the_bundled_model_always_parse() {
    use xinstruct_operators::generate::Constraint;
    use xinstruct_operators::instruct::prompt::EVALUATE_FEWSHOT;
    use xinstruct_operators::instruct::verdict::{parse_evaluation, Label};
    let g = gemma(4);
    assert!(g.constrains(Constraint::Verdict));
    let template = xinstruct_operators::instruct::prompt::Template::new("e", 2, EVALUATE_FEWSHOT);
    let mut reqs = Vec::new();
    for code in ["ben", "fin", "hin", "ind", "swh", "tam", "tha", "tur", "urd", "vie"] {
        let text: String = crate::filters::documents(code).remove(0).chars().take(600).collect();
        for instruction in
            ["Summarize what this text says about human rights.", "Write a recipe for apple pie."]
        {
            let mut params = SamplingParams::greedy(64);
            params.stop = vec!["###".into(), "\n\n".into()];
            params.constraint = Some(Constraint::Verdict);
            reqs.push(GenRequest::new(
                template.prompt(&[("instruction", instruction), ("text", &text)]),
                params,
            ));
        }
    }
    let out = g.generate(reqs);
    let mut labels = std::collections::BTreeMap::new();
    for (i, r) in out.into_iter().enumerate() {
        let c = r.unwrap();
        let e = parse_evaluation(&c.text);
        assert!(
            e.issue.is_none() && e.label != Label::Unknown && e.score.is_some(),
            "answer {i}: {:?} -> {e:?}",
            c.text
        );
        assert!(c.text.contains("\nLabel: ") && c.text.contains("\nScore: "), "{:?}", c.text);
        *labels.entry(e.label).or_insert(0) += 1;
    }
    eprintln!("labels: {labels:?}");
}

/// A server that counts the requests it holds at once (each answered after 150 ms on a thread
/// of its own); the first answer is a 429 with `Retry-After: 3600`.
fn counting_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let addr = match server.server_addr() {
        tiny_http::ListenAddr::IP(a) => a.to_string(),
        _ => unreachable!(),
    };
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let seen = most.clone();
    std::thread::spawn(move || {
        for (n, req) in server.incoming_requests().enumerate() {
            let (now, most) = (now.clone(), most.clone());
            std::thread::spawn(move || {
                let held = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(held, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(150));
                now.fetch_sub(1, Ordering::SeqCst);
                let close = tiny_http::Header::from_bytes("Connection", "close").unwrap();
                if n == 0 {
                    let later = tiny_http::Header::from_bytes("Retry-After", "3600").unwrap();
                    let r = tiny_http::Response::from_string("busy").with_status_code(429);
                    let _ = req.respond(r.with_header(later).with_header(close));
                    return;
                }
                let reply = r#"{"choices": [{"text": " ok", "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}"#;
                let _ = req.respond(tiny_http::Response::from_string(reply).with_header(close));
            });
        }
    });
    (format!("http://{addr}/v1"), seen)
}

/// `concurrency` bounds the requests in flight across every caller thread sharing a generator
/// (each `generate` operator has its own), measured at the server; a `Retry-After` of an hour
/// waits `max_retry_after_secs`.
#[test]
fn concurrency_is_a_limit_across_callers_and_retry_after_is_capped() {
    let (url, most) = counting_server();
    let g = Arc::new(
        OpenAiGenerator::new(OpenAiConfig {
            base_url: url,
            model: "m".into(),
            concurrency: 3,
            retries: 2,
            max_retry_after_secs: 1,
            ..OpenAiConfig::default()
        })
        .unwrap(),
    );
    let started = std::time::Instant::now();
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let g = g.clone();
            std::thread::spawn(move || g.generate((0..6).map(|_| text("Hi", 2)).collect()))
        })
        .collect();
    for c in callers {
        for r in c.join().unwrap() {
            assert_eq!(r.unwrap().text, " ok");
        }
    }
    let most = most.load(std::sync::atomic::Ordering::SeqCst);
    assert!((2..=3).contains(&most), "{most} requests in flight at once with concurrency 3");
    // 24 requests of 150 ms, 3 at a time, plus one capped Retry-After of 1 s.
    let took = started.elapsed().as_secs_f64();
    assert!(took < 20.0, "{took} s: the Retry-After of an hour was not capped");
}

/// One HTTP/1.0 exchange on a fresh connection: (status, body).
fn http(addr: &str, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(120))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    (head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0), body.to_string())
}

fn post(addr: &str, path: &str, key: Option<&str>, body: &str) -> (u16, String) {
    let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
    http(
        addr,
        &format!(
            "POST {path} HTTP/1.0\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[test]
fn xinst_serve_survives_its_clients() {
    use std::io::{BufRead, Read, Write};
    let mut child = crate::common::xinst()
        .env("XINST_TEST_KEY", "sekrit")
        .args(["serve", "--model", "gemma-3-270m", "--addr", "127.0.0.1:0", "--max-batch", "2"])
        .args(["--max-context", "128", "--max-body-mib", "1", "--max-connections", "64"])
        .args(["--read-timeout-secs", "2", "--api-key-env", "XINST_TEST_KEY"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap();
    let addr = addr.trim_start_matches("http://").trim_end_matches("/v1").to_string();
    let threads = || std::fs::read_dir(format!("/proc/{}/task", child.id())).map(|d| d.count()).unwrap_or(0);
    let ok = r#"{"prompt":"The capital of France is","max_tokens":4}"#;

    // Auth: required everywhere but /health.
    assert_eq!(http(&addr, "GET /health HTTP/1.0\r\n\r\n").0, 200);
    assert_eq!(post(&addr, "/v1/completions", None, ok).0, 401);
    assert_eq!(post(&addr, "/v1/completions", Some("wrong"), ok).0, 401);
    let (status, body) = post(&addr, "/v1/completions", Some("sekrit"), ok);
    assert_eq!(status, 200, "{body}");

    // Malformed JSON: 400 with a JSON error.
    let (status, body) = post(&addr, "/v1/completions", Some("sekrit"), "{\"prompt\": ");
    assert_eq!(status, 400);
    assert!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"]["message"].is_string());

    // max_tokens far past the context: capped, answered.
    let (status, body) = post(
        &addr,
        "/v1/completions",
        Some("sekrit"),
        r#"{"prompt":"Once upon a time","max_tokens":100000000}"#,
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() <= 128, "{v}");

    // A 16 MiB body: refused by its declared length before it is read.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    write!(s, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekrit\r\nContent-Length: 16777216\r\n\r\n").unwrap();
    let _ = s.write_all(&vec![b' '; 64 << 10]);
    let mut resp = [0u8; 12];
    s.read_exact(&mut resp).unwrap();
    assert_eq!(&resp, b"HTTP/1.1 413");

    // Stalled connections (headers never sent) neither stop others nor pile up threads; the
    // server closes them after its read timeout.
    let before = threads();
    let mut stalled: Vec<std::net::TcpStream> = (0..40)
        .map(|_| {
            let mut c = std::net::TcpStream::connect(&addr).unwrap();
            c.write_all(b"POST /v1/completions HTTP/1.1\r\nHost:").unwrap();
            c
        })
        .collect();
    let started = std::time::Instant::now();
    let (status, _) = post(&addr, "/v1/completions", Some("sekrit"), ok);
    assert_eq!(status, 200);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert!(threads() <= before + 4, "threads {} -> {}", before, threads());
    std::thread::sleep(std::time::Duration::from_secs(3));
    for c in &mut stalled {
        c.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        // Closed by the server: EOF, a reset, or a 408 it sent before closing.
        match c.read(&mut buf) {
            Ok(n) => assert!(
                n == 0 || buf.starts_with(b"HTTP/1.1 408"),
                "{:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) => assert_ne!(e.kind(), std::io::ErrorKind::WouldBlock, "still open"),
        }
    }
    assert_eq!(http(&addr, "GET /health HTTP/1.0\r\n\r\n").0, 200, "still serving");
    let _ = child.kill();
    let _ = child.wait();
}
