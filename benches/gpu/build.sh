#!/usr/bin/env bash
# Builds what benches/gpu/run.sh runs on the GPU machine: the generate bench with
# `--features cuda` (its --synthetic mode needs no model file), stripped and xz-compressed into
# benches/gpu/bin/generate-bench.xz (ignored by git; `carry` takes it to the machine).
#
#     benches/gpu/build.sh        # on this machine, no GPU needed; ~20 min on 2 cores after a release build
#
# The GPU machine has a driver and CUDA 13.0's libraries (PyTorch's wheels) but no toolchain,
# so the binary is made here with CUDA 13.0's compiler from NVIDIA's PyPI wheels: 13.0, not the
# newest, because candle's kernels ship as PTX that the driver there (580, CUDA 13.0) compiles
# at start, and a driver refuses PTX from a newer CUDA.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.tools/cuda-venv
cu() { ls -d "$PWD"/$venv/lib/python3*/site-packages/nvidia/cu13 2>/dev/null; }
if [ -z "$(cu)" ] || [ ! -x "$(cu)/bin/nvcc" ]; then
  echo "installing CUDA 13.0's nvcc and libraries into $venv (~1.2 GB)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --no-cache-dir 'nvidia-cuda-nvcc==13.0.88' 'nvidia-cuda-runtime==13.0.96' \
    'nvidia-cuda-cccl==13.0.85' 'nvidia-cuda-crt==13.0.88' 'nvidia-cuda-nvrtc==13.0.88' 'nvidia-cublas==13.0.*' \
    'nvidia-curand==10.4.0.35'
fi
root="$(cu)"
# The linker wants unversioned names, and libcuda.so, which only a driver installs: a stub that
# defines every driver function cudarc declares (the GPU machine's real libcuda.so.1 is loaded
# at run time; the stub is never shipped).
link="$PWD/.tools/cuda-link"
mkdir -p "$link"
for l in cublas cublasLt curand nvrtc cudart; do
  ln -sf "$(ls "$root"/lib/lib$l.so.* | head -1)" "$link/lib$l.so"
done
if [ ! -f "$link/libcuda.so" ]; then
  cargo fetch --quiet
  sys=$(ls -d "$HOME"/.cargo/registry/src/*/cudarc-0.19.10/src/driver/sys/mod.rs | head -1)
  grep -oE 'pub fn cu[A-Za-z0-9_]+' "$sys" | sort -u | sed 's/pub fn \(.*\)/void \1(void) {}/' > "$link/cuda_stub.c"
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$link/libcuda.so" "$link/cuda_stub.c"
fi
export CUDA_ROOT="$root" CUDA_PATH="$root" CUDA_HOME="$root" PATH="$root/bin:$PATH"
export CUDA_COMPUTE_CAP=90 CUDARC_CUDA_VERSION=13000 LIBRARY_PATH="$link"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/rel}"
exe=$(cargo bench --no-run --bench generate --features cuda --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "generate" and m.get("executable"):
        print(m["executable"])')
[ -n "$exe" ] || { cargo bench --no-run --bench generate --features cuda; exit 1; }
mkdir -p benches/gpu/bin
strip -o benches/gpu/bin/generate-bench "$exe"
xz -T2 -6 -f benches/gpu/bin/generate-bench
ls -l "$exe" benches/gpu/bin/generate-bench.xz
echo "needs at run time: $(readelf -d "$exe" | grep -oE 'lib[^]]+' | paste -sd' ')"
