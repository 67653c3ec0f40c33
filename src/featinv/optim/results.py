"""What an inversion produces: :class:`Result` (images, log, config) and its :class:`Summary`,
the numbers that go into ``summary.json``.

>>> s = summarize(torch.full((3, 8, 8), 0.5), torch.full((3, 8, 8), 0.6), {"relu3_3": 0.04},
...               history=[{"loss": 1.0, "seconds": 0.1}], status="done")
>>> round(s["psnr"], 1), s["ijcv_error"]["relu3_3"], s["final_loss"]
(20.0, 0.2, 1.0)
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import torch

from .. import metrics
from ..config import InvertConfig
from ..status import Status


class RestartSummary(TypedDict):
    seed: int
    status: Status
    final_loss: float
    feature_error_total: float


class Summary(TypedDict):
    """``summary.json``: how the run ended and how good the result is."""

    status: Status  # done | interrupted | diverged
    steps: int
    psnr: float  # against the target at the model's input size, dB
    ssim: float
    feature_error: dict[str, float]  # ||phi(x) - phi0||^2 / ||phi0||^2 per layer
    feature_error_total: float
    ijcv_error: dict[str, float]  # its square root (the IJCV paper's measure)
    seconds_per_step: float  # median over the steps after the first
    seconds_total: float
    final_loss: float
    batch_size: int  # images sharing each forward pass
    memory_mb: float
    model: str
    pretrained: bool
    layers: list[str]
    param: str | None  # pixel | fourier | pyramid | dip | custom (a module of the user's)
    device: str
    message: NotRequired[str]  # why it diverged
    restarts: NotRequired[list[RestartSummary]]  # every restart, when there were several
    best_seed: NotRequired[int]
    diversity: NotRequired[dict[str, float]]  # their spread (see featinv.optim.diversity), with --diversity
    channels: NotRequired[str]  # the channels inverted (--channels)
    window: NotRequired[dict[str, Any]]  # the cells inverted and the pixels they see (--window)
    param_module: NotRequired[str]  # the class of a parameterisation of the user's (param custom)
    objective: NotRequired[str]  # an objective of the user's, as written (featinv.invert)


def summarize(
    image: torch.Tensor,
    target: torch.Tensor,
    errors: dict[str, float],
    history: list[dict[str, float]],
    status: Status,
    **context: Any,
) -> Summary:
    """The summary of a result ``image`` against ``target`` (``[3, H, W]``) with its feature
    ``errors`` and log; ``context`` fills the descriptive fields (model, layers, device, ...)."""
    times = [r["seconds"] for r in history[1:]] or [r["seconds"] for r in history] or [math.nan]
    summary: dict[str, Any] = {
        "status": status,
        "steps": len(history),
        "psnr": metrics.psnr(image, target),
        "ssim": metrics.ssim(image, target),
        "feature_error": errors,
        "feature_error_total": sum(errors.values()),
        "ijcv_error": {k: metrics.ijcv_error(v) for k, v in errors.items()},
        "seconds_per_step": statistics.median(times),
        "seconds_total": sum(r["seconds"] for r in history),
        "final_loss": history[-1]["loss"] if history else math.nan,
    }
    summary.update(context)
    return summary  # type: ignore[return-value]


@dataclass(repr=False)
class Result:
    """What an inversion produced. ``image`` and ``target`` are ``[3, H, W]`` in [0, 1]; it
    prints as one line (:meth:`caption`), and shows itself as an image in a notebook."""

    image: torch.Tensor
    target: torch.Tensor
    status: Status
    steps: int
    history: list[dict[str, float]]
    summary: Summary
    config: InvertConfig
    out_dir: Path | None = None
    paths: dict[str, Path] = field(default_factory=dict)
    restarts: list[torch.Tensor] = field(default_factory=list)  # every restart's image, with diversity

    @property
    def psnr(self) -> float:
        return self.summary["psnr"]

    # -- how a notebook shows it ---------------------------------------------------------
    def __repr__(self) -> str:
        return f"<Result {self.caption()}>"

    def caption(self) -> str:
        """One line of numbers: layers, status, steps, PSNR, SSIM, feature error."""
        s = self.summary
        return (
            f"{s.get('model', self.config.model)} {', '.join(s.get('layers', []))}: {self.status} after "
            f"{self.steps} steps; PSNR {s['psnr']:.2f} dB, SSIM {s['ssim']:.3f}, "
            f"feature error {s['feature_error_total']:.4g}"
        )

    def side_by_side(self) -> torch.Tensor:
        """Target and reconstruction next to each other, ``[3, H, 2W + 4]`` (a white gap)."""
        return side_by_side(self.target, self.image)

    def _repr_png_(self) -> bytes:
        return png_bytes(self.side_by_side())

    def _repr_html_(self) -> str:
        return figure_html(self._repr_png_(), self.caption())


# -- pictures for a notebook (the live view draws the same ones while a run forms) ---------------
def side_by_side(target: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """``[3, H, W]`` twice -> ``[3, H, 2W + 4]``: target, a white gap, image."""
    gap = torch.ones(3, image.shape[1], 4)
    return torch.cat([target.cpu(), gap, image.cpu()], dim=2)


def png_bytes(image: torch.Tensor) -> bytes:
    """A ``[3, H, W]`` image in ``[0, 1]`` as PNG bytes."""
    import io

    from ..files import to_pil

    buf = io.BytesIO()
    to_pil(image).save(buf, format="PNG")
    return buf.getvalue()


def figure_html(png: bytes, caption: str) -> str:
    """A side-by-side PNG as an HTML figure with its caption (pixels kept sharp when scaled up)."""
    import base64
    import html

    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure style="margin:0"><img src="data:image/png;base64,{data}" '
        f'alt="target, then reconstruction" style="image-rendering:pixelated;min-width:320px">'
        f"<figcaption>target | reconstruction<br>{html.escape(caption)}</figcaption></figure>"
    )
