#!/usr/bin/env bash
# How well a run keeps a slow model server fed with 1 and 3 epochs in flight: xinst serve
# (Gemma-3-270M) behind a proxy that holds each request DELAY seconds (a remote GPU server's
# latency), a multi-epoch crawl, the memo off. Prints wall time, the model's busy time (at
# least one request out) and their ratio per setting. docs/benchmarks.md has the figures.
#
# usage: [SKIP=dedup,...] [REPLAY=answers.jsonl] scripts/bench_pipelining.sh [EPOCHS] [REPEAT] [SAMPLE_RATE] [DELAY]
#   EPOCHS shards of the sample's culturax-00000.jsonl repeated REPEAT times each (fresh ids,
#   so each epoch samples other documents), one shard an epoch.
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${1:-8} REPEAT=${2:-40} RATE=${3:-0.004} DELAY=${4:-0.5} SKIP=${SKIP:-dedup}
X=${XINST:-target/release/xinst}
work=$(mktemp -d /tmp/xinst-pipelining-XXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

python3 - "$work/in" "$EPOCHS" "$REPEAT" <<'EOF'
import json, os, sys
out, epochs, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(out)
docs = []
for line in open("data/sample/culturax-00000.jsonl"):
    try:
        docs.append(json.loads(line))
    except ValueError:
        pass  # the sample's deliberately broken record
for e in range(epochs):
    with open(f"{out}/shard-{e:03}.jsonl", "w") as f:
        for r in range(repeat):
            for i, d in enumerate(docs):
                f.write(json.dumps({**d, "id": f"e{e}-r{r}-{i}"}, ensure_ascii=False) + "\n")
EOF

"$X" serve --model gemma-3-270m --addr 127.0.0.1:0 --max-batch 8 > "$work/serve.out" &
until grep -q http "$work/serve.out"; do sleep 0.2; done
upstream=$(grep -o 'http://[0-9.:]*' "$work/serve.out" | head -1 | sed 's|http://||')
# REPLAY=FILE: answers recorded in FILE are replayed after the delay, without the upstream
# (a model server off this machine's CPUs); the first run that lacks them records them.
python3 scripts/delay_proxy.py "$upstream" "$DELAY" ${REPLAY:+"$REPLAY"} > "$work/proxy.out" 2> "$work/proxy.err" &
proxy=$!
until grep -q http "$work/proxy.out"; do sleep 0.2; done
url=$(head -1 "$work/proxy.out")
cat > "$work/x.toml" <<EOF
[instruct]
generator = "$url"
memo = false
[reverse_instruction]
template = "fewshot"
sample_rate = $RATE
[openai]
model = "gemma-3-270m"
concurrency = 8
EOF

echo "epochs $EPOCHS x $(wc -l < "$work/in/shard-000.jsonl") documents, sample rate $RATE, delay ${DELAY}s a request"
printf "%-18s %10s %12s %8s %12s\n" "epochs in flight" "wall s" "model busy s" "busy" "model calls"
runs="1 3"
if [ -n "${REPLAY:-}" ]; then runs="record 1 3"; fi
for n in $runs; do
  rm -rf "$work/out"
  "$X" run --no-progress --input "$work/in" --output "$work/out" --config "$work/x.toml" \
    --skip "$SKIP" --shards-per-epoch 1 --epochs-in-flight "${n/record/3}" --stats-json "$work/s.json" > /dev/null 2>&1 || true
  python3 - "$work/s.json" "$n" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
calls = sum(o.get("counters", {}).get("model_calls", 0) for o in s["operators"].values())
print(f"{sys.argv[2]:<18} {s['wall_secs']:10.1f} {s['model_busy_secs']:12.1f} {100 * s['model_busy_fraction']:7.0f}% {calls:12}")
EOF
done
# The proxy's count of answers replayed and forwarded to the model, over all the runs above.
kill "$proxy" 2>/dev/null && sleep 0.5 && cat "$work/proxy.err" || true
