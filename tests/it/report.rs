//! `xinst report` over the fixture dataset: the HTML has every section and its charts, the PNG
//! charts are real images, and headless Chromium renders the page.

use crate::common::*;
use std::path::Path;

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

#[test]
fn report_renders_in_headless_chromium() {
    let tmp = tempdir();
    let out = tmp.path().join("report");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dataset");
    let run = xinst().args(["report", "--data"]).arg(&data).arg("--out").arg(&out).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    for section in [
        "Pairs per language",
        "Output length histograms",
        "Reject reasons",
        "Label distribution",
        "Cluster sizes",
        "Verbs and objects",
    ] {
        assert!(html.contains(section), "missing section {section}");
    }
    assert!(html.contains("Hindi") && html.contains("lang_not_target"), "data missing from the report");
    assert!(!html.contains("src=\"http"), "the report must be self-contained");
    let charts: Vec<String> = files_under(&out.join("charts"));
    assert!(charts.len() >= 5 + 11, "{charts:?}");
    for c in &charts {
        let bytes = std::fs::read(out.join("charts").join(c)).unwrap();
        assert!(bytes.starts_with(PNG_MAGIC) && bytes.len() > 2000, "{c}: not a rendered PNG");
    }

    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| std::process::Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("Chromium is needed for this check: .ci/run installs Debian's chromium");
    let shot = tmp.path().join("shot.png");
    let status = std::process::Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args([
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", tmp.path().join("profile").display()))
        .args(["--window-size=1280,2400"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", out.join("index.html").display()))
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let bytes = std::fs::read(&shot).unwrap();
    assert!(bytes.starts_with(PNG_MAGIC) && bytes.len() > 50_000, "screenshot {} bytes", bytes.len());
    if let Some(dest) = std::env::var_os("XINST_REPORT_SCREENSHOT") {
        std::fs::copy(&shot, dest).unwrap();
    }
}
