//! The X-Instruction stages against a real third-party server: llama.cpp's OpenAI-compatible
//! server (llama-cpp-python `[server]` 0.3.36, built from source by `.ci/run` into the user
//! cache; `XINST_LLAMA_PYTHON` names its Python) serving the bundled Gemma-3-270M GGUF. The
//! judge's answers come back as free text there (llama-cpp-python ignores `response_format`), so
//! this also runs the verdict parser on a real server's replies.

use crate::common::*;
use crate::filters::documents;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn llama_python() -> PathBuf {
    match std::env::var("XINST_LLAMA_PYTHON") {
        Ok(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!(
            "llama.cpp's server not found: run .ci/run (it builds llama-cpp-python[server] 0.3.36 into \
             ~/.cache/xinstruct/) or set XINST_LLAMA_PYTHON to a Python that imports llama_cpp.server"
        ),
    }
}

struct LlamaServer {
    child: std::process::Child,
    url: String,
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `python -m llama_cpp.server` on the bundled GGUF and waits until `/v1/models`
/// answers (loading takes a few seconds).
fn llama_server() -> LlamaServer {
    let gguf = xinstruct::models::ensure("gemma-3-270m").unwrap().join("model.gguf");
    let port = free_port();
    let log = std::env::temp_dir().join(format!("xinst-llama-{port}.log"));
    let child = std::process::Command::new(llama_python())
        .args(["-m", "llama_cpp.server", "--model"])
        .arg(&gguf)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--n_threads", "2", "--n_ctx", "4096"])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start llama_cpp.server");
    let server = LlamaServer { child, url: format!("http://127.0.0.1:{port}/v1") };
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(180) {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /v1/models HTTP/1.0\r\n\r\n");
            let mut resp = String::new();
            let _ = s.read_to_string(&mut resp);
            if resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200") {
                return server;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!(
        "llama.cpp's server did not answer in 180 s: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// Reverse instruction, the judge and refinement through llama.cpp's server: every document
/// that reached the model stages ends as a pair or a reject with a stage's reason (none from
/// the client: no `gen_*`), both the reverse and the judge's prompts were answered, the pairs
/// name the model id the server gave, and a rerun answers everything from the memo.
#[test]
fn x_instruction_stages_against_llama_cpp_server() {
    let server = llama_server();
    let tmp = tempdir();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let lines: Vec<String> = [("swh", "sw_Latn"), ("fin", "fi_Latn"), ("tur", "tr_Latn")]
        .iter()
        .flat_map(|&(code, lang)| documents(code).into_iter().skip(1).take(3).map(move |t| (lang, t)))
        .enumerate()
        .map(|(i, (lang, text))| {
            serde_json::json!({"id": format!("doc-{i}"), "text": text, "language": lang}).to_string()
        })
        .collect();
    std::fs::write(input.join("udhr.jsonl"), lines.join("\n") + "\n").unwrap();
    let cfg = tmp.path().join("x.toml");
    std::fs::write(
        &cfg,
        format!(
            "[instruct]\ngenerator = {:?}\nmemo_path = {:?}\n[reverse_instruction]\ntemplate = \"fewshot\"\n\
             [pipeline]\noperators = [\"reverse_instruction\", \"cross_check\", \"evaluate\", \"refine\"]\n\
             [evaluate]\nself_check_rate = 0.0\n[openai]\nmodel = \"\"\nconcurrency = 1\ntimeout_secs = 300\n",
            server.url,
            tmp.path().join("memo.redb").display().to_string()
        ),
    )
    .unwrap();
    let (i, out) = (input.to_str().unwrap(), tmp.path().join("out"));
    let (o, s) = run_xinst(i, out.to_str().unwrap(), &["--config", cfg.to_str().unwrap()], 0);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(s["awaiting_model"], 0, "{err}");
    let reached = s["operators"]["reverse_instruction"]["docs_in"].as_u64().unwrap();
    assert_eq!(reached, 9, "{s}");
    assert!(counter(&s, "reverse_instruction", "model_calls") >= reached, "{s}");
    assert!(counter(&s, "evaluate", "model_calls") >= 1, "the judge was asked: {s}");
    let rejects = read_rejects(&out);
    assert!(rejects.iter().all(|(_, _, r)| !r.starts_with("gen_")), "{rejects:?}");
    let made = pairs(&out);
    eprintln!("pairs: {}, rejects: {rejects:?}", made.len());
    assert_eq!(made.len() + rejects.len(), 9, "every document a pair or a reject: {rejects:?}");
    assert!(made.iter().all(|p| !p.instruction.is_empty() && !p.label.is_empty()), "{made:?}");

    // The rerun is answered from the memo.
    let again = tmp.path().join("again");
    let (_, s2) = run_xinst(i, again.to_str().unwrap(), &["--config", cfg.to_str().unwrap()], 0);
    assert_eq!(calls(&s2), 0, "{s2}");
    assert_eq!(pairs(&again).len(), made.len());
}
