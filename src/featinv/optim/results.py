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

_NOT_TERMS = {"loss", "lr", "seconds", "step"}  # a log row's other keys are the objective's terms


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
    judge: NotRequired[dict[str, Any]]  # --judge: an independent network's verdict (featinv.nets.judge)


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
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)  # step -> image, from featinv.invert

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
        page = figure_html(self._repr_png_(), self.caption())
        if not self.snapshots:
            return page
        steps = ", ".join(map(str, self._strip_steps()))
        strip = png_bytes(self.snapshot_strip())
        return page + figure_html(strip, f"steps {steps}", alt="the reconstruction as it formed", heading="snapshots")

    def _strip_steps(self, most: int = 8) -> list[int]:
        steps = sorted(self.snapshots)
        if len(steps) <= most:
            return steps
        return [steps[round(i * (len(steps) - 1) / (most - 1))] for i in range(most)]

    def snapshot_strip(self, most: int = 8) -> torch.Tensor:
        """Up to ``most`` snapshots, evenly spaced, in a row ``[3, H, n(W + 4) - 4]``."""
        if not self.snapshots:
            raise ValueError("this result has no snapshots (snapshot_every=0, or not made by featinv.invert)")
        images = [self.snapshots[s] for s in self._strip_steps(most)]
        gap = torch.ones(3, images[0].shape[1], 4)
        return torch.cat([part for image in images for part in (gap, image)][1:], dim=2)

    def plot(self, terms: bool = True) -> Any:
        """The loss against the step (and each term of the objective, with ``terms``), on a log
        scale: a matplotlib ``Figure``, made without pyplot, so no backend is chosen for you
        (a notebook shows it; ``fig.savefig(path)`` writes it).

        >>> log = [{"loss": 2.0, "feat_relu3_3": 1.5, "seconds": 0.1},
        ...        {"loss": 1.0, "feat_relu3_3": 0.8, "seconds": 0.1}]
        >>> grey = torch.full((3, 8, 8), 0.5)
        >>> r = Result(grey, grey, Status.DONE, 2, log, summarize(grey, grey, {}, log, Status.DONE), InvertConfig())
        >>> [line.get_label() for line in r.plot().axes[0].get_lines()]
        ['loss', 'feat_relu3_3']
        """
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6, 3.5), layout="constrained")
        ax = fig.add_subplot()
        steps = range(1, len(self.history) + 1)
        shown = ["loss"] + (
            [k for k in (self.history[0] if self.history else {}) if k not in _NOT_TERMS] if terms else []
        )
        for key in shown:
            values = [row.get(key, math.nan) for row in self.history]
            if any(v > 0 for v in values):
                ax.plot(steps, values, label=key, linewidth=2 if key == "loss" else 1)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("value")
        ax.set_title(self.caption(), fontsize=8)
        ax.legend(fontsize=8)
        return fig


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


def figure_html(
    png: bytes, caption: str, alt: str = "target, then reconstruction", heading: str = "target | reconstruction"
) -> str:
    """A PNG as an HTML figure: ``heading`` over ``caption`` (pixels kept sharp when scaled up)."""
    import base64
    import html

    data = base64.b64encode(png).decode("ascii")
    above = f"{html.escape(heading)}<br>" if heading else ""
    return (
        f'<figure style="margin:0"><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" '
        f'style="image-rendering:pixelated;min-width:320px"><figcaption>{above}{html.escape(caption)}'
        "</figcaption></figure>"
    )
