#!/usr/bin/env bash
# Opt-in torch.compile on one CUDA GPU: correctness against eager, then featinv against the floor
# with each mode (compile time reported). Separate from gpu.sh, whose run stays under 5 minutes;
# this adds about 2-4 minutes of compiling. Writes into ${OUT:-benchmarks/gpu-results}.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-benchmarks/gpu-results}
mkdir -p "$out"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
echo "== compiled vs eager: same seeded run"
"$py" benchmarks/gpu_check.py "$out/gpu_check_compile.json" --compile
for mode in default reduce-overhead; do
  echo "== featinv vs floor, compile=$mode"
  "$py" -m featinv bench --device cuda --cases vgg16_bn:conv3_1 resnet18:res2 --sizes 128 224 --batches 1 \
      --steps 20 --warmup 5 --no-naive --batched-sizes --compile "$mode" \
      --json "$out/bench_compile_$mode.json" | tee "$out/bench_compile_$mode.txt" || echo "compile=$mode failed"
done
