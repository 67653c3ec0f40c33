#!/usr/bin/env bash
# GPU check + benchmark, end to end in a few minutes on one CUDA GPU with no network.
# Needs only python3 with torch, torchvision, numpy, Pillow, PyYAML, scikit-image, matplotlib
# (no pip install: the package runs from src/). Writes into ${OUT:-benchmarks/gpu-results}.
#   bash benchmarks/gpu.sh            correctness, featinv vs floor vs naive, bf16, scaling (< 5 min)
#   bash benchmarks/gpu.sh --compile  instead: the opt-in torch.compile modes, correctness against
#                                     eager and featinv vs floor with compile time (+2-4 min)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-benchmarks/gpu-results}
mkdir -p "$out"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/nvidia-smi.txt"
if [[ "${1:-}" == "--compile" ]]; then
  echo "== compiled vs eager: same seeded run"
  "$py" benchmarks/gpu_check.py "$out/gpu_check_compile.json" --compile
  for mode in default reduce-overhead; do
    echo "== featinv vs floor, compile=$mode"
    "$py" -m featinv bench --device cuda --cases vgg16_bn:conv3_1 resnet18:res2 --sizes 128 224 --batches 1 \
        --steps 20 --warmup 5 --no-naive --batched-sizes --compile "$mode" \
        --json "$out/bench_compile_$mode.json" | tee "$out/bench_compile_$mode.txt" || echo "compile=$mode failed"
  done
  exit 0
fi
echo "== correctness: CUDA fp32 vs CPU, autocast vs fp32"
"$py" benchmarks/gpu_check.py "$out/gpu_check.json"
echo "== featinv vs floor vs naive, fp32"
"$py" -m featinv bench --device cuda --steps 20 --warmup 5 --json "$out/bench_fp32.json" | tee "$out/bench_fp32.txt"
echo "== featinv step with bf16 autocast"
"$py" -m featinv bench --device cuda --steps 20 --warmup 5 --precision bf16 --no-naive --batched-sizes \
    --json "$out/bench_bf16.json" | tee "$out/bench_bf16.txt"
echo "== scaling: size x batch, vgg16_bn conv3_1"
"$py" -m featinv bench --device cuda --cases vgg16_bn:conv3_1 --sizes 128 256 512 --batches 1 8 32 \
    --steps 10 --warmup 3 --no-naive --batched-sizes --json "$out/scaling.json" | tee "$out/scaling.txt"
