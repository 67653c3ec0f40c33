"""The optimisation loop: ``invert(config) -> Result``.

Data flow: target image -> preprocess -> features (once, detached); pixels ``x`` (RGB [0, 1])
-> preprocess -> truncated network -> objective -> backward -> optimiser step -> clamp.
Callbacks observe the run (snapshots, log, progress) and may ask it to stop; the loop itself
never touches files, so the same code serves notebooks, the CLI and sweeps.
"""
from __future__ import annotations

import math
import signal
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from . import metrics
from .config import InvertConfig
from .extractor import FeatureExtractor, frozen
from .io import load_target, read_image, fit_square
from .layers import parse_layers
from .models import LoadedModel, load_model
from .objectives import AlphaTerm, FeatureTerm, Objective, TVTerm
from .preprocess import preset
from .schedules import Schedule

STATUSES = ("done", "interrupted", "diverged")


@dataclass
class Result:
    """What an inversion produced. ``image`` and ``target`` are ``[3, H, W]`` in [0, 1]."""

    image: torch.Tensor
    target: torch.Tensor
    status: str
    steps: int
    history: list[dict[str, float]]
    summary: dict[str, Any]
    config: InvertConfig
    out_dir: Path | None = None
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def psnr(self) -> float:
        return self.summary["psnr"]


class Callback(Protocol):
    """Observes a run. Every method is optional."""

    def on_start(self, run: "Inversion") -> None: ...
    def on_step(self, run: "Inversion", row: dict[str, float]) -> None: ...
    def on_end(self, run: "Inversion", result: Result) -> None: ...


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from .errors import ConfigError
        raise ConfigError(f"device {name!r} requested but CUDA is not available here: use --device cpu")
    return device


def _initial_image(config: InvertConfig, size: int) -> torch.Tensor:
    """Seeded Gaussian noise around grey, constant grey, or an image file: ``[1, 3, S, S]``."""
    if config.init == "noise":
        gen = torch.Generator().manual_seed(config.seed)  # CPU generator: same start on any device
        x = 0.5 + 0.1 * torch.randn(1, 3, size, size, generator=gen)
    elif config.init == "grey":
        x = torch.full((1, 3, size, size), 0.5)
    else:
        x = fit_square(read_image(config.init), size)[None]
    return x.clamp(0, 1)


def _make_optimizer(config: InvertConfig, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)
    return torch.optim.LBFGS(params, lr=config.lr, max_iter=1, history_size=20,
                             line_search_fn=None)


class Inversion:
    """One inversion, prepared and ready to step. Most users call :func:`invert` instead.

    Everything that can fail on bad input (image, model, layers) fails in the constructor,
    before the first step.
    """

    def __init__(self, config: InvertConfig, model: LoadedModel | None = None) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self.model = model or load_model(config.model, config.weights, self.device)
        self.model.module.to(self.device)
        self.preprocess = preset(config.preprocess) if config.preprocess else self.model.preprocess
        layer_spec = config.layers or ((self.model.default_layer,) if self.model.default_layer else None)
        if not layer_spec:
            from .errors import ConfigError
            raise ConfigError(f"no layers given and {self.model.name} has no default: pass "
                              f"--layers (see `featinv layers {self.model.name}`)")
        self.requests = parse_layers(list(layer_spec))
        self.layers = tuple(f"{r.name}:{r.weight:g}" if r.weight != 1 else r.name for r in self.requests)
        self.config = config = config.replace(layers=self.layers)  # resolved, for config.yaml
        self.extractor = FeatureExtractor(self.model.module, [r.name for r in self.requests])
        self.target = load_target(config.image, config.size).to(self.device)
        with torch.no_grad(), frozen(self.model.module):
            target_features = self.extractor(self.preprocess(self.target[None]))
        terms: list = [FeatureTerm(r.name, target_features[r.name].detach(), r.weight)
                       for r in self.requests]
        terms.append(TVTerm(config.tv, config.tv_beta, config.tv_kind))
        if config.alpha_norm > 0:
            terms.append(AlphaTerm(config.alpha_norm, config.alpha))
        self.objective = Objective(terms)
        self.schedule = Schedule.parse(config.schedule)
        self.x = _initial_image(config, config.size).to(self.device).requires_grad_(True)
        self.optimizer = _make_optimizer(config, [self.x])
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.last_good = self.x.detach().clone()
        self.status = "running"
        self._stop_reason: str | None = None

    # -- control -------------------------------------------------------------------------
    def request_stop(self, status: str = "interrupted") -> None:
        """Ask the loop to stop after the current step (callbacks, signal handlers)."""
        self._stop_reason = status

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where the run is (a checkpoint)."""
        return {"step": self.step, "x": self.x.detach().cpu().clone(),
                "last_good": self.last_good.cpu().clone(),
                "optimizer": self.optimizer.state_dict(), "history": list(self.history),
                "config": self.config.to_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.x.copy_(state["x"].to(self.device))
        self.last_good = state["last_good"].to(self.device)
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.history = list(state["history"])

    # -- the loop ------------------------------------------------------------------------
    def _evaluate(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        features = self.extractor(self.preprocess(self.x))
        return self.objective(self.x, features)

    def step_once(self) -> dict[str, float]:
        """One optimisation step; returns the log row (loss measured before the update)."""
        lr = self.config.lr * self.schedule.factor(self.step, self.config.steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        start = time.perf_counter()
        measured: dict[str, Any] = {}

        def closure() -> torch.Tensor:
            self.optimizer.zero_grad(set_to_none=True)
            total, parts = self._evaluate()
            loss = total.sum()
            loss.backward()
            if not measured:  # L-BFGS calls the closure more than once: log the first
                measured["loss"], measured["parts"] = loss.detach(), {k: v.detach() for k, v in parts.items()}
            return loss

        if isinstance(self.optimizer, torch.optim.LBFGS):
            self.optimizer.step(closure)
        else:
            closure()
            if torch.isfinite(measured["loss"]):
                self.last_good = self.x.detach().clone()
                self.optimizer.step()
        loss = float(measured["loss"])
        if isinstance(self.optimizer, torch.optim.LBFGS) and math.isfinite(loss):
            self.last_good = self.x.detach().clone()
        if self.config.clamp:
            with torch.no_grad():
                self.x.clamp_(0, 1)
        row = {"step": self.step + 1, "loss": loss}
        row.update({k: float(v.sum()) for k, v in measured["parts"].items()})
        row.update({"lr": lr, "seconds": time.perf_counter() - start})
        return row

    def run(self, callbacks: Sequence[Callback] = ()) -> Result:
        """Step until done, diverged or asked to stop; then measure and return the result."""
        with frozen(self.model.module), _sigint_stops(self):
            _emit(callbacks, "on_start", self)
            while self.step < self.config.steps and self._stop_reason is None:
                row = self.step_once()
                if not math.isfinite(row["loss"]) or not bool(torch.isfinite(self.x).all()):
                    self._stop_reason = "diverged"
                    with torch.no_grad():
                        self.x.copy_(self.last_good)  # keep the last good image
                    break
                self.step += 1
                self.history.append(row)
                _emit(callbacks, "on_step", self, row)
            self.status = self._stop_reason or "done"
            result = self._result()
            _emit(callbacks, "on_end", self, result)
        return result

    def _result(self) -> Result:
        image = self.x.detach()[0].clamp(0, 1)
        with torch.no_grad():
            features = self.extractor(self.preprocess(image[None]))
            errors = {k: float(v[0]) for k, v in self.objective.feature_error(features).items()}
        times = [r["seconds"] for r in self.history[1:]] or [r["seconds"] for r in self.history] or [math.nan]
        summary = {
            "status": self.status,
            "steps": self.step,
            "psnr": metrics.psnr(image, self.target),
            "ssim": metrics.ssim(image, self.target),
            "feature_error": errors,
            "feature_error_total": sum(errors.values()),
            "ijcv_error": {k: metrics.ijcv_error(v) for k, v in errors.items()},
            "seconds_per_step": statistics.median(times),
            "seconds_total": sum(r["seconds"] for r in self.history),
            "final_loss": self.history[-1]["loss"] if self.history else math.nan,
            "model": self.model.label,
            "pretrained": self.model.pretrained,
            "layers": list(self.layers),
            "device": str(self.device),
        }
        if self.status == "diverged":
            summary["message"] = (f"the loss became NaN/Inf at step {self.step + 1}: the learning "
                                  f"rate ({self.config.lr:g}) is probably too high; the last good "
                                  f"image was kept")
        return Result(image.cpu(), self.target.cpu(), self.status, self.step, list(self.history),
                      summary, self.config)


def _emit(callbacks: Sequence[Callback], event: str, *args: Any) -> None:
    for cb in callbacks:
        method = getattr(cb, event, None)
        if method is not None:
            method(*args)


@contextmanager
def _sigint_stops(run: Inversion) -> Iterator[None]:
    """First Ctrl-C: finish the step, then stop cleanly ('interrupted'); second: abort."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if run._stop_reason == "interrupted":
            raise KeyboardInterrupt
        run.request_stop("interrupted")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def invert(image: str | None = None, *, config: InvertConfig | None = None,
           model: str | LoadedModel | torch.nn.Module | None = None, out: str | Path | None = None,
           resume: bool = False, callbacks: Sequence[Callback] = (), quiet: bool = True,
           **options: Any) -> Result:
    """Reconstruct ``image`` from a network's features. Keyword options are config fields.

    ``model`` is a registry name (see :func:`featinv.models.load_model`), a loaded model, or
    any ``nn.Module`` of your own (preprocessing then defaults to torchvision's ImageNet one;
    set ``preprocess=...`` otherwise).

    With ``out``, the run is written to that folder (config, log, snapshots, final image,
    summary) and can be resumed with ``resume=True``; without it nothing touches the disk.

    >>> r = invert("skimage:astronaut", model="resnet18", weights="none", layers="res1", size=32, steps=2)
    >>> r.image.shape, r.status
    (torch.Size([3, 32, 32]), 'done')
    """
    from .config import from_dict

    base = config.to_dict() if config else {}
    if isinstance(model, str):
        options["model"], model = model, None
    elif isinstance(model, torch.nn.Module):
        from .preprocess import PRESETS
        model = LoadedModel(model, PRESETS["imagenet"], type(model).__name__, "user module", True)
    if isinstance(model, LoadedModel):
        options.setdefault("model", model.name)
    if image is not None:
        options["image"] = image
    config = from_dict({**base, **options})
    if out is None:
        if resume:
            from .errors import RunFolderError
            raise RunFolderError("resume needs the run folder: pass out=...")
        callbacks = list(callbacks) + ([] if quiet else [_progress()])
        return Inversion(config, model).run(callbacks)
    from .runfolder import run_in_folder
    return run_in_folder(config, Path(out), resume=resume, model=model,
                         callbacks=list(callbacks), quiet=quiet)


def _progress() -> Callback:
    from .callbacks import ProgressBar
    return ProgressBar()
