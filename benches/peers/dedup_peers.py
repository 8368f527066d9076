"""MinHash LSH dedup peers for benches/dedup.rs: rensa and datasketch on the same JSONL corpus.

    python dedup_peers.py {rensa|datasketch} corpus.jsonl dups_out.txt

Word 5-grams of the lowercased text (str.split), 128 permutations, LSH 16 bands x 8 rows,
threshold 0.8, "keep the first": a document is a duplicate when an earlier kept document
in one of its buckets has estimated Jaccard >= 0.8. Prints one JSON line with the time and
peak RSS; writes the duplicates' ids, one per line.
"""
import json
import sys
import time

PERMS, BANDS, THRESHOLD, NGRAM = 128, 16, 0.8, 5


def shingles(text):
    words = text.lower().split()
    n = min(NGRAM, len(words)) or 1
    return [" ".join(words[i:i + n]) for i in range(max(1, len(words) - n + 1))]


def main():
    peer, corpus, out = sys.argv[1], sys.argv[2], sys.argv[3]
    docs = [json.loads(line) for line in open(corpus, encoding="utf-8")]
    dups = []
    start = time.perf_counter()
    if peer == "rensa":
        from rensa import RMinHash, RMinHashLSH
        lsh = RMinHashLSH(threshold=THRESHOLD, num_perm=PERMS, num_bands=BANDS)
        kept = {}
        for i, d in enumerate(docs):
            m = RMinHash(num_perm=PERMS, seed=42)
            m.update(shingles(d["text"]))
            if any(kept[c].jaccard(m) >= THRESHOLD for c in lsh.query(m)):
                dups.append(d["id"])
            else:
                lsh.insert(i, m)
                kept[i] = m
    elif peer == "datasketch":
        from datasketch import MinHash, MinHashLSH
        lsh = MinHashLSH(threshold=THRESHOLD, num_perm=PERMS, params=(BANDS, PERMS // BANDS))
        kept = {}
        for i, d in enumerate(docs):
            m = MinHash(num_perm=PERMS, seed=1)
            m.update_batch([s.encode("utf-8") for s in shingles(d["text"])])
            if any(kept[c].jaccard(m) >= THRESHOLD for c in lsh.query(m)):
                dups.append(d["id"])
            else:
                lsh.insert(i, m)
                kept[i] = m
    else:
        raise SystemExit(f"unknown peer {peer}")
    secs = time.perf_counter() - start
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(dups))
    # VmHWM, not ru_maxrss: the latter keeps the forking bench process's peak across exec.
    peak_mb = 0.0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                peak_mb = int(line.split()[1]) / 1024
    print(json.dumps({"peer": peer, "docs": len(docs), "secs": secs, "dups": len(dups), "peak_mb": peak_mb}))


if __name__ == "__main__":
    main()
