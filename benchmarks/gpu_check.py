"""CUDA correctness checks, printed and written as JSON (run by benchmarks/gpu.sh).

1. fp32 on CUDA against the CPU: the same seeded inversion (random-init VGG16-BN, conv3_1,
   64 px, 20 steps) on both; cuDNN may use TF32 for fp32 convolutions, so the two agree to
   about 1e-2 in the final pixels, not bit for bit.
2. bf16 and fp16 autocast against fp32 on CUDA at 128 px, 100 steps: PSNR of each result
   against the target and the pixel difference to the fp32 result.
"""
from __future__ import annotations

import json
import sys

import torch

from featinv.inversion import invert


def main(out: str) -> None:
    assert torch.cuda.is_available(), "no CUDA device"
    base = dict(image="skimage:chelsea", model="vgg16_bn", weights="none", layers="conv3_1", seed=0)
    report: dict = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    cpu = invert(size=64, steps=20, device="cpu", **base)
    gpu = invert(size=64, steps=20, device="cuda", **base)
    report["cuda_vs_cpu"] = {
        "max_abs_pixel_diff": float((cpu.image - gpu.image).abs().max()),
        "mean_abs_pixel_diff": float((cpu.image - gpu.image).abs().mean()),
        "final_loss_cpu": cpu.history[-1]["loss"], "final_loss_cuda": gpu.history[-1]["loss"],
        "first_loss_rel_diff": abs(cpu.history[0]["loss"] - gpu.history[0]["loss"]) / cpu.history[0]["loss"],
    }
    fp32 = invert(size=128, steps=100, device="cuda", **base)
    report["autocast"] = {"fp32_psnr": fp32.summary["psnr"]}
    for precision in ("bf16", "fp16"):
        low = invert(size=128, steps=100, device="cuda", precision=precision, **base)
        report["autocast"][precision] = {
            "status": low.status, "psnr": low.summary["psnr"],
            "psnr_minus_fp32": low.summary["psnr"] - fp32.summary["psnr"],
            "mean_abs_pixel_diff_to_fp32": float((low.image - fp32.image).abs().mean()),
            "feature_error": low.summary["feature_error"], "fp32_feature_error": fp32.summary["feature_error"]}
    print(json.dumps(report, indent=2))
    with open(out, "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "gpu_check.json")
