//! `xinst report`: a self-contained HTML report of a dataset (inline SVG charts, no external
//! assets) plus each chart as a PNG, all from SQL over the dataset: rows per language, output
//! length histograms, reject reasons, evaluator labels, diversity cluster sizes and the
//! verb–object chart of the English instructions.

use crate::sql::{SqlSession, CANNED};
use anyhow::{Context, Result};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows of a result as strings (NULL as empty).
fn table(batches: &[RecordBatch]) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let header = batches
        .first()
        .map(|b| b.schema().fields().iter().map(|f| f.name().clone()).collect())
        .unwrap_or_default();
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for b in batches {
        let formatters = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for i in 0..b.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(i).to_string()).collect());
        }
    }
    Ok((header, rows))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A horizontal bar chart as SVG.
fn bar_chart(title: &str, bars: &[(String, f64)]) -> String {
    let (width, label_w, row_h, top) = (760.0, 230.0, 24.0, 40.0);
    let height = top + row_h * bars.len().max(1) as f64 + 16.0;
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, sans-serif" font-size="13"><rect width="100%" height="100%" fill="white"/><text x="8" y="24" font-size="16" font-weight="bold">{}</text>"#,
        esc(title)
    );
    if bars.is_empty() {
        let _ = write!(svg, r##"<text x="8" y="{}" fill="#777">no data yet</text>"##, top + 16.0);
    }
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = top + row_h * i as f64;
        let w = (width - label_w - 80.0) * value / max;
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="end">{}</text><rect x="{label_w}" y="{}" width="{w:.1}" height="{}" fill="#4c78a8"/><text x="{}" y="{}">{}</text>"##,
            label_w - 6.0,
            y + 16.0,
            esc(label),
            y + 4.0,
            row_h - 6.0,
            label_w + w + 6.0,
            y + 16.0,
            if value.fract() == 0.0 { format!("{value:.0}") } else { format!("{value:.1}") }
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A histogram (vertical bars) as SVG.
fn histogram(title: &str, buckets: &[(String, f64)]) -> String {
    let (width, height, left, bottom, top) = (360.0, 220.0, 40.0, 40.0, 34.0);
    let max = buckets.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9);
    let n = buckets.len().max(1) as f64;
    let bw = (width - left - 10.0) / n;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, sans-serif" font-size="10"><rect width="100%" height="100%" fill="white"/><text x="6" y="20" font-size="13" font-weight="bold">{}</text>"#,
        esc(title)
    );
    for (i, (label, value)) in buckets.iter().enumerate() {
        let h = (height - top - bottom) * value / max;
        let x = left + bw * i as f64;
        let _ = write!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#72b7b2"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{value:.0}</text><text x="{:.1}" y="{}" text-anchor="end" transform="rotate(-45 {:.1} {})">{}</text>"##,
            x + 1.0,
            height - bottom - h,
            bw - 2.0,
            x + bw / 2.0,
            height - bottom - h - 3.0,
            x + bw / 2.0,
            height - bottom + 12.0,
            x + bw / 2.0,
            height - bottom + 12.0,
            esc(label)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn number(s: &str) -> f64 {
    s.parse().unwrap_or(0.0)
}

/// Renders an SVG chart to PNG with resvg (system fonts).
fn save_png(svg: &str, path: &Path, fonts: &Arc<resvg::usvg::fontdb::Database>) -> Result<()> {
    let opt = resvg::usvg::Options { fontdb: fonts.clone(), ..Default::default() };
    let tree = resvg::usvg::Tree::from_str(svg, &opt).context("chart SVG")?;
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).context("empty chart")?;
    pixmap.fill(resvg::tiny_skia::Color::WHITE);
    resvg::render(&tree, resvg::tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap.save_png(path).with_context(|| format!("writing {}", path.display()))
}

/// Writes `index.html` and `charts/*.png` under `out`; returns the HTML path.
pub async fn build(session: &SqlSession, data: &str, out: &Path) -> Result<PathBuf> {
    let charts_dir = out.join("charts");
    std::fs::create_dir_all(&charts_dir).with_context(|| format!("creating {}", charts_dir.display()))?;
    let canned = |name: &str| CANNED.iter().find(|(n, _)| *n == name).map(|(_, q)| *q).unwrap_or("");
    let mut fonts = resvg::usvg::fontdb::Database::new();
    fonts.load_system_fonts();
    let fonts = Arc::new(fonts);
    let mut charts: Vec<(String, String)> = Vec::new();
    let mut body = String::new();

    let html_table = |body: &mut String, title: &str, header: &[String], rows: &[Vec<String>]| {
        let _ = write!(body, "<h2>{}</h2><table><tr>", esc(title));
        for h in header {
            let _ = write!(body, "<th>{}</th>", esc(h));
        }
        body.push_str("</tr>");
        for r in rows {
            body.push_str("<tr>");
            for v in r {
                let _ = write!(body, "<td>{}</td>", esc(v));
            }
            body.push_str("</tr>");
        }
        body.push_str("</table>");
    };
    let (header, rows) = table(&session.query(canned("lang_stats")).await?)?;
    html_table(&mut body, "Pairs per language", &header, &rows);
    let (pair_header, pair_rows) = table(&session.query(canned("pair_stats")).await?)?;
    if !pair_rows.is_empty() {
        html_table(&mut body, "Instructions (X-Instruction stages)", &pair_header, &pair_rows);
    }
    let (judge_header, judge_rows) = table(
        &session
            .query(
                "SELECT DISTINCT run_started_ms, judge_pairs AS twins_judged, ROUND(judge_discrimination, 3) AS discrimination \
                 FROM stats WHERE judge_pairs > 0 ORDER BY run_started_ms",
            )
            .await?,
    )?;
    if !judge_rows.is_empty() {
        html_table(
            &mut body,
            "Judge self-check (how often a true pair is rated above a mismatched twin; 0.5 = no information)",
            &judge_header,
            &judge_rows,
        );
    }
    let per_lang: Vec<(String, f64)> =
        rows.iter().map(|r| (format!("{} ({})", r[1], r[0]), number(&r[2]))).collect();
    charts.push(("languages".into(), bar_chart("Pairs per language", &per_lang)));

    let hist_sql =
        "SELECT lang, CAST(FLOOR(character_length(text) / 250) AS BIGINT) AS bucket, COUNT(*) AS n \
                    FROM pairs GROUP BY 1, 2 ORDER BY 1, 2";
    let (_, rows) = table(&session.query(hist_sql).await?)?;
    let mut langs: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
    langs.dedup();
    for lang in &langs {
        let last = rows.iter().filter(|r| &r[0] == lang).map(|r| number(&r[1]) as usize).max().unwrap_or(0);
        let buckets: Vec<(String, f64)> = (0..=last.max(11))
            .map(|b| {
                let n = rows
                    .iter()
                    .find(|r| &r[0] == lang && number(&r[1]) as usize == b)
                    .map_or(0.0, |r| number(&r[2]));
                (format!("{}", b * 250), n)
            })
            .collect();
        charts.push((
            format!("length-{lang}"),
            histogram(&format!("Output length, {lang} (characters)"), &buckets),
        ));
    }

    let (_, rows) = table(
        &session.query("SELECT reason, COUNT(*) FROM rejects GROUP BY reason ORDER BY 2 DESC, 1").await?,
    )?;
    charts.push((
        "rejects".into(),
        bar_chart(
            "Rejects by reason",
            &rows.iter().map(|r| (r[0].clone(), number(&r[1]))).collect::<Vec<_>>(),
        ),
    ));
    let (_, rows) = table(&session.query(canned("label_distribution")).await?)?;
    let mut labels: std::collections::BTreeMap<String, f64> = Default::default();
    for r in &rows {
        *labels.entry(r[1].clone()).or_default() += number(&r[2]);
    }
    charts.push(("labels".into(), bar_chart("Evaluator labels", &labels.into_iter().collect::<Vec<_>>())));
    let (_, rows) = table(
        &session
            .query("SELECT cluster_size, COUNT(*) FROM diversity WHERE selected GROUP BY 1 ORDER BY 1")
            .await?,
    )?;
    charts.push((
        "clusters".into(),
        bar_chart(
            "Diversity clusters: selected pairs by cluster size",
            &rows.iter().map(|r| (format!("size {}", r[0]), number(&r[1]))).collect::<Vec<_>>(),
        ),
    ));
    let (_, rows) = table(&session.query(canned("top_verbs")).await?)?;
    charts.push((
        "verbs".into(),
        bar_chart(
            "Leading verb and object of the instructions",
            &rows.iter().take(25).map(|r| (format!("{} {}", r[0], r[1]), number(&r[2]))).collect::<Vec<_>>(),
        ),
    ));

    let mut html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>xinstruct report</title><style>\
         body{{font-family:'DejaVu Sans',sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse}} \
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}} th{{background:#f3f3f3}} \
         .grid{{display:flex;flex-wrap:wrap;gap:8px}} figure{{margin:8px 0}}</style></head><body>\
         <h1>xinstruct dataset report</h1><p>Dataset: <code>{}</code></p>{body}",
        esc(data)
    );
    let section = |html: &mut String, title: &str, names: &[&str]| {
        let _ = write!(html, "<h2>{}</h2><div class=\"grid\">", esc(title));
        for (name, svg) in charts.iter().filter(|(n, _)| names.iter().any(|p| n.starts_with(p))) {
            let _ = write!(html, "<figure id=\"{name}\">{svg}<figcaption><a href=\"charts/{name}.png\">{name}.png</a></figcaption></figure>");
        }
        html.push_str("</div>");
    };
    section(&mut html, "Rows per language", &["languages"]);
    section(&mut html, "Output length histograms", &["length-"]);
    section(&mut html, "Reject reasons", &["rejects"]);
    section(&mut html, "Label distribution", &["labels"]);
    section(&mut html, "Cluster sizes", &["clusters"]);
    section(&mut html, "Verbs and objects", &["verbs"]);
    html.push_str("</body></html>\n");
    for (name, svg) in &charts {
        save_png(svg, &charts_dir.join(format!("{name}.png")), &fonts)?;
    }
    let index = out.join("index.html");
    std::fs::write(&index, html).with_context(|| format!("writing {}", index.display()))?;
    Ok(index)
}
