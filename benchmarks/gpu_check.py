"""CUDA correctness checks, printed and written as JSON (run by benchmarks/gpu.sh).

1. fp32 on CUDA against the CPU: one step's loss and input gradient with TF32 off (they
   should agree to ~1e-5), then the same seeded inversion (random-init VGG16-BN, conv3_1,
   64 px, 20 steps) on both with the defaults (cuDNN may use TF32): the losses agree, the
   pixels only roughly (Adam's first steps are sign-like where a gradient is ~0).
2. bf16 and fp16 autocast against fp32 on CUDA at 128 px, 100 steps: PSNR of each result
   against the target and the pixel difference to the fp32 result.
3. With ``--compile`` (run by gpu.sh --compile) instead: the opt-in torch.compile modes (default,
   reduce-overhead = CUDA graphs) against eager fp32, same seeded run: first loss and PSNR.
"""

from __future__ import annotations

import json
import sys

import torch

from featinv.api import invert


def main(out: str) -> None:
    assert torch.cuda.is_available(), "no CUDA device"
    base = dict(image="skimage:chelsea", model="vgg16_bn", weights="none", layers="conv3_1", seed=0)
    report: dict = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    from featinv.config import InvertConfig
    from featinv.optim.inversion import Inversion

    torch.backends.cudnn.allow_tf32 = False
    grads, losses = {}, {}
    for device in ("cpu", "cuda"):
        run = Inversion(
            InvertConfig(size=64, steps=10, device=device, param="pixel", **{**base, "layers": ("conv3_1",)})
        )
        x = run.slots[0].param.pixels
        total, _ = run.problem.losses(x, x)
        total.sum().backward()
        grads[device], losses[device] = x.grad.detach().cpu(), float(total.sum().detach())
    torch.backends.cudnn.allow_tf32 = True
    report["one_step_no_tf32"] = {
        "loss_rel_diff": abs(losses["cpu"] - losses["cuda"]) / losses["cpu"],
        "grad_rel_diff": float((grads["cpu"] - grads["cuda"]).norm() / grads["cpu"].norm()),
    }
    cpu = invert(size=64, steps=20, device="cpu", **base)
    gpu = invert(size=64, steps=20, device="cuda", **base)
    report["cuda_vs_cpu"] = {
        "max_abs_pixel_diff": float((cpu.image - gpu.image).abs().max()),
        "mean_abs_pixel_diff": float((cpu.image - gpu.image).abs().mean()),
        "final_loss_cpu": cpu.history[-1]["loss"],
        "final_loss_cuda": gpu.history[-1]["loss"],
        "first_loss_rel_diff": abs(cpu.history[0]["loss"] - gpu.history[0]["loss"]) / cpu.history[0]["loss"],
    }
    fp32 = invert(size=128, steps=100, device="cuda", **base)
    report["autocast"] = {"fp32_psnr": fp32.summary["psnr"]}
    for precision in ("bf16", "fp16"):
        low = invert(size=128, steps=100, device="cuda", precision=precision, **base)
        report["autocast"][precision] = {
            "status": low.status,
            "psnr": low.summary["psnr"],
            "psnr_minus_fp32": low.summary["psnr"] - fp32.summary["psnr"],
            "mean_abs_pixel_diff_to_fp32": float((low.image - fp32.image).abs().mean()),
            "feature_error": low.summary["feature_error"],
            "fp32_feature_error": fp32.summary["feature_error"],
        }
    _write(report, out)


def compile_check(out: str) -> None:
    """The opt-in torch.compile modes against eager fp32: the same seeded run, 128 px, 100 steps."""
    assert torch.cuda.is_available(), "no CUDA device"
    base = dict(
        image="skimage:chelsea",
        model="vgg16_bn",
        weights="none",
        layers="conv3_1",
        seed=0,
        size=128,
        steps=100,
        device="cuda",
    )
    eager = invert(**base)
    report: dict = {
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "eager_psnr": eager.summary["psnr"],
    }
    for mode in ("default", "reduce-overhead"):
        try:
            compiled = invert(compile=mode, **base)
            report[mode] = {
                "status": compiled.status,
                "psnr_minus_eager": compiled.summary["psnr"] - eager.summary["psnr"],
                "first_loss_rel_diff": abs(compiled.history[0]["loss"] - eager.history[0]["loss"])
                / eager.history[0]["loss"],
                "mean_abs_pixel_diff_to_eager": float((compiled.image - eager.image).abs().mean()),
            }
        except Exception as exc:  # report and go on: the other mode and the benchmark still matter
            report[mode] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    _write(report, out)


def _write(report: dict, out: str) -> None:
    print(json.dumps(report, indent=2))
    with open(out, "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else "gpu_check.json"
    (compile_check if "--compile" in sys.argv else main)(path)
