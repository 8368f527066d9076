#!/usr/bin/env bash
# The GPU check of issue 19, run on the GPU machine lent by the device tool, from the root of
# the tree it gets (no Rust toolchain, no registry, <= 64 MiB of tree: no model file travels):
#
#     benches/gpu/build.sh                      # here: builds benches/gpu/bin/generate-bench.xz
#     run(command="bash benches/gpu/run.sh", carry=["benches/gpu/bin"], timeout_s=420)
#
# It runs the generate bench's --synthetic mode (random Gemma-3-1B weights built on the GPU,
# bf16) at batch 1, 8, 64 and 256 and prints tokens/s and the share of the H200's 4.8 TB/s a
# decode step reaches. Output: $OUT/gpu-bench.txt (docs/benchmarks.md has the figures).
set -uo pipefail
out="${OUT:-/tmp}/gpu-bench.txt"
bin=/tmp/generate-bench
xz -dc benches/gpu/bin/generate-bench.xz > "$bin" && chmod +x "$bin" || { echo "no benches/gpu/bin/generate-bench.xz: run benches/gpu/build.sh and carry benches/gpu/bin"; exit 2; }
# The driver's libcuda is on the loader's path; cuBLAS, cuRAND and NVRTC of CUDA 13 come with
# the machine's PyTorch wheels.
dirs=$(find /usr /opt /usr/local -xdev \( -name 'libcublas.so.13*' -o -name 'libcublasLt.so.13*' \
  -o -name 'libcurand.so.10*' -o -name 'libnvrtc.so.13*' -o -name 'libcuda.so.1' \) 2>/dev/null \
  | xargs -r -n1 dirname | sort -u | paste -sd:)
export LD_LIBRARY_PATH="$dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv
  echo "libraries from: $dirs"
  ldd "$bin" | grep -E 'not found|cuda|cublas|curand|nvrtc'
} 2>&1 | tee "$out"
if ldd "$bin" | grep -q 'not found'; then echo "a library is missing (above)" | tee -a "$out"; exit 3; fi
# Each row prints as its batch finishes, so a run cut short still reports the smaller batches.
timeout 360 "$bin" --synthetic gemma3-1b --device cuda --batches 1,8,64,256 --prompt 256 --new 64 2>&1 | tee -a "$out"
rc=${PIPESTATUS[0]}
nvidia-smi --query-gpu=memory.used,clocks.sm,clocks.mem --format=csv 2>&1 | tee -a "$out"
exit "$rc"
