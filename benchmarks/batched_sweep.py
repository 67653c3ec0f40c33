"""Throughput of batched trials against the same trials run one by one (one process, one run).

    python benchmarks/batched_sweep.py                    # 8 trials at 64 and 128 px, 20 steps
    python benchmarks/batched_sweep.py --sizes 32 --steps 3 --trials 2 --json out.json

Reports trials x steps per second for both ways and their ratio; ratios are what count on a
noisy machine. The trials differ in lr, TV weight and seed, as in a real sweep.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from featinv.config import InvertConfig
from featinv.nets.models import load_model
from featinv.optim.inversion import Inversion


def measure(size: int, steps: int, trials: int, model_name: str, layer: str) -> dict:
    model = load_model(model_name)
    configs = [
        InvertConfig(
            model=model_name,
            layers=(layer,),
            size=size,
            steps=steps,
            lr=0.01 * (1 + i),
            tv=0.1 * (i % 3),
            seed=i,
            device="cpu",
        )
        for i in range(trials)
    ]
    Inversion(configs[:1], model).run_all()  # warm-up (allocator, oneDNN kernels)
    start = time.perf_counter()
    for c in configs:
        Inversion(c, model).run_all()
    sequential = time.perf_counter() - start
    start = time.perf_counter()
    Inversion(configs, model).run_all()
    batched = time.perf_counter() - start
    return {
        "size": size,
        "trials": trials,
        "steps": steps,
        "model": model_name,
        "layer": layer,
        "sequential_s": sequential,
        "batched_s": batched,
        "sequential_steps_per_s": trials * steps / sequential,
        "batched_steps_per_s": trials * steps / batched,
        "speedup": sequential / batched,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--model", default="vgg16_offline")
    parser.add_argument("--layer", default="relu3_3")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    rows = [measure(s, args.steps, args.trials, args.model, args.layer) for s in args.sizes]
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"{'size':>5} {'trials':>6} {'sequential steps/s':>19} {'batched steps/s':>16} {'speedup':>8}")
    for r in rows:
        print(
            f"{r['size']:>5} {r['trials']:>6} {r['sequential_steps_per_s']:>19.2f} "
            f"{r['batched_steps_per_s']:>16.2f} {r['speedup']:>7.2f}x"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
