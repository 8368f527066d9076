#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 60) and prints, per target,
# the executions and whether it crashed. Needs a nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz --locked`). Crashes are saved under fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-60}"
cargo +nightly fuzz build -O
status=0
for target in $(cargo +nightly fuzz list); do
  log="$(mktemp)"
  if cargo +nightly fuzz run -O "$target" -- -max_total_time="$secs" -rss_limit_mb=4096 >"$log" 2>&1; then
    result=ok
  else
    result=CRASH
    status=1
  fi
  execs="$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')"
  echo "$target: ${secs}s, ${execs:-?} executions, $result"
  [ "$result" = ok ] || tail -40 "$log"
  rm -f "$log"
done
exit $status
