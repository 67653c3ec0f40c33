"""The optimisation loop: ``invert(config) -> Result``.

Data flow: target image -> preprocess -> features (once, detached); pixels ``x`` (RGB [0, 1])
-> preprocess -> truncated network -> objective -> backward -> optimiser step -> clamp.
Callbacks observe the run (snapshots, log, progress) and may ask it to stop; the loop itself
never touches files, so the same code serves notebooks, the CLI and sweeps.
"""
from __future__ import annotations

import copy
import math
import signal
import statistics
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from . import metrics
from .config import InvertConfig
from .extractor import FeatureExtractor, frozen
from .io import load_target
from .layers import parse_layers
from .models import LoadedModel, load_model
from .objectives import AlphaTerm, FeatureTerm, Objective, TVTerm
from .perf import compile_step, is_compile_failure, native_precision, tune_allocator, use_channels_last
from .preprocess import preset
from .schedules import Schedule

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
    """Observes a run. Every method is optional. ``rows`` and ``results`` have one entry per
    trial of the (possibly batched) run; a row is None for a trial that has stopped."""

    def on_start(self, run: "Inversion") -> None: ...
    def on_step(self, run: "Inversion", rows: list[dict[str, float] | None]) -> None: ...
    def on_end(self, run: "Inversion", results: list[Result]) -> None: ...


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from .errors import ConfigError
        raise ConfigError(f"device {name!r} requested but CUDA is not available here: use --device cpu")
    return device


def _initial_image(config: InvertConfig) -> torch.Tensor:
    """Seeded Gaussian noise around grey, constant grey, or an image file: ``[1, 3, S, S]``."""
    size = config.size
    if config.init == "noise":
        gen = torch.Generator().manual_seed(config.seed)  # CPU generator: same start on any device
        x = 0.5 + 0.1 * torch.randn(1, 3, size, size, generator=gen)
    elif config.init == "grey":
        x = torch.full((1, 3, size, size), 0.5)
    else:
        x = load_target(config.init, config.size)[None]
    return x.clamp(0, 1)


def _make_optimizer(configs: Sequence[InvertConfig], params: list[torch.Tensor]
                    ) -> tuple[torch.optim.Optimizer, list[int]]:
    """One optimiser for a batch, and each trial's parameter group.

    Trials whose learning rate follows the same course (lr, schedule, momentum, momentum reset)
    share a group, so fused Adam updates them in one call (one launch on a GPU, not one per
    trial); the others get a group each. The update of each trial is the same either way.
    """
    kind = configs[0].optimizer
    if kind == "lbfgs":
        return torch.optim.LBFGS(params, lr=configs[0].lr, max_iter=1, history_size=20), [0]
    keys = [(c.lr, c.schedule, c.momentum, c.momentum_reset) for c in configs]
    distinct = list(dict.fromkeys(keys))
    group_of = [distinct.index(k) for k in keys]
    groups = [{"params": [p for p, g in zip(params, group_of) if g == j], "lr": lr, "momentum": momentum}
              for j, (lr, _, momentum, _) in enumerate(distinct)]
    if kind == "adam":  # fused: one kernel per group (CPU: 49 -> 40 us at batch 1, 228 -> 161 at 8 groups)
        groups = [{k: v for k, v in g.items() if k != "momentum"} for g in groups]
        return torch.optim.Adam(groups, fused=True), group_of
    return torch.optim.SGD(groups, lr=configs[0].lr), group_of


def _check_batchable(configs: Sequence[InvertConfig]) -> None:
    from .config import BATCH_SHARED, batch_key
    from .errors import ConfigError
    if not configs:
        raise ConfigError("an inversion needs at least one config")
    if len({batch_key(c) for c in configs}) > 1:
        raise ConfigError(f"configs in one batch must agree on {', '.join(BATCH_SHARED)}")
    if configs[0].optimizer == "lbfgs" and len(configs) > 1:
        raise ConfigError("L-BFGS runs one trial at a time (it has a single parameter group)")


class Inversion:
    """One inversion, or a batch of them sharing each forward/backward pass.

    A batch is a list of configs that agree on the model, layers, size and steps (see
    ``featinv.config.BATCH_SHARED``) and may differ in image, lr, schedule, TV and alpha-norm
    weights, seed, init and jitter. Each trial keeps its own pixels, optimiser state and log; the
    per-image losses are summed, so each trial's gradient is its own (the network is in eval
    mode, so images do not interact). Most users call :func:`invert` instead.

    Everything that can fail on bad input (image, model, layers) fails in the constructor.
    """

    def __init__(self, configs: InvertConfig | Sequence[InvertConfig],
                 model: LoadedModel | None = None) -> None:
        configs = [configs] if isinstance(configs, InvertConfig) else list(configs)
        _check_batchable(configs)
        first = configs[0]
        self.device = resolve_device(first.device)
        self.model = model or load_model(first.model, first.weights, self.device)
        self.model.module.to(self.device)
        self.preprocess = preset(first.preprocess) if first.preprocess else self.model.preprocess
        layer_spec = first.layers or ((self.model.default_layer,) if self.model.default_layer else None)
        if not layer_spec:
            from .errors import ConfigError
            raise ConfigError(f"no layers given and {self.model.name} has no default: pass "
                              f"--layers (see `featinv layers {self.model.name}`)")
        self.requests = parse_layers(list(layer_spec))
        self.layers = tuple(f"{r.name}:{r.weight:g}" if r.weight != 1 else r.name for r in self.requests)
        self.configs = [c.replace(layers=self.layers) for c in configs]  # resolved, for config.yaml
        self.extractor = FeatureExtractor(self.model.module, [r.name for r in self.requests])
        self.memory_format = torch.channels_last if use_channels_last(self.device) else torch.contiguous_format
        if not native_precision(self.device, first.precision):
            warnings.warn(f"precision {first.precision} has no native kernels on this CPU and is emulated: "
                          f"expect it to be much slower than fp32 (measured 26x for fp16 on a CPU without "
                          f"AVX512-FP16); use --precision fp32", stacklevel=2)
        if self.device.type == "cpu":
            tune_allocator()
        else:
            torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels
        self.extractor.to(memory_format=self.memory_format)
        self.target = torch.stack([load_target(c.image, c.size) for c in self.configs]).to(self.device)
        with torch.no_grad(), frozen(self.model.module):
            target_features = self._features(self.target)
        self.objective = self._objective(target_features)
        self.schedules = [Schedule.parse(c.schedule) for c in self.configs]
        self._losses = compile_step(self._objective_of, first.compile)
        self.params = [_initial_image(c).to(self.device).requires_grad_(True) for c in self.configs]
        self.optimizer, self.group_of = _make_optimizer(self.configs, self.params)
        self._group_members = [[i for i, g in enumerate(self.group_of) if g == j]
                               for j in range(len(self.optimizer.param_groups))]
        self.jitter_rngs = [torch.Generator().manual_seed(c.seed + 1) for c in self.configs]
        self.step = 0
        self.histories: list[list[dict[str, float]]] = [[] for _ in self.configs]
        self.last_good = [p.detach().clone() for p in self.params]  # buffers, updated in place
        self.statuses = ["running"] * len(self.configs)
        self._stop_reason: str | None = None
        self.memory_bytes: int | None = None  # activations saved for backward + weights, one step

    def _objective(self, target_features: dict[str, torch.Tensor]) -> Objective:
        def per_trial(name: str) -> float | torch.Tensor:
            values = [float(getattr(c, name)) for c in self.configs]
            return values[0] if len(set(values)) == 1 else torch.tensor(values, device=self.device)

        first = self.configs[0]
        space = self.preprocess.centred if first.prior_space == "network" else None
        terms: list = [FeatureTerm(r.name, target_features[r.name].detach(), r.weight)
                       for r in self.requests]
        terms.append(TVTerm(per_trial("tv"), first.tv_beta, first.tv_kind, space))
        if any(c.alpha_norm > 0 for c in self.configs):
            terms.append(AlphaTerm(per_trial("alpha_norm"), first.alpha, space))
        return Objective(terms)

    # -- single-trial views (the common case) ---------------------------------------------
    @property
    def config(self) -> InvertConfig:
        return self.configs[0]

    @property
    def x(self) -> torch.Tensor:
        """The first trial's pixels ``[1, 3, S, S]``."""
        return self.params[0]

    @property
    def history(self) -> list[dict[str, float]]:
        return self.histories[0]

    @property
    def active(self) -> list[bool]:
        return [s == "running" for s in self.statuses]

    # -- control -------------------------------------------------------------------------
    def request_stop(self, status: str = "interrupted") -> None:
        """Ask the loop to stop after the current step (callbacks, signal handlers)."""
        self._stop_reason = status

    def state_dict(self, index: int = 0) -> dict[str, Any]:
        """Everything needed to continue trial ``index`` exactly where it is (a checkpoint)."""
        param = self.params[index]
        group = self.optimizer.param_groups[self.group_of[index]]
        optimizer = {"state": {0: copy.deepcopy(self.optimizer.state.get(param, {}))},
                     "param_groups": [{**{k: v for k, v in group.items() if k != "params"}, "params": [0]}]}
        return {"step": len(self.histories[index]), "x": param.detach().cpu().clone(),
                "last_good": self.last_good[index].cpu().clone(), "optimizer": optimizer,
                "history": list(self.histories[index]), "config": self.configs[index].to_dict(),
                "jitter_rng": self.jitter_rngs[index].get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue a single trial from :meth:`state_dict` (resuming runs one trial at a time)."""
        if len(self.params) != 1:
            raise ValueError("load_state_dict resumes a single-trial Inversion")
        with torch.no_grad():
            self.x.copy_(state["x"].to(self.device))
        self.last_good = [state["last_good"].to(self.device).clone()]
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.histories = [list(state["history"])]
        if "jitter_rng" in state:
            self.jitter_rngs[0].set_state(state["jitter_rng"])

    # -- the loop ------------------------------------------------------------------------
    def _jittered(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Shift trial ``index``'s image by a random offset (IJCV jitter), or leave it."""
        c = self.configs[index]
        if not c.jitter or self.step >= c.steps - c.jitter_off_last:
            return x
        dy, dx = torch.randint(-c.jitter, c.jitter + 1, (2,), generator=self.jitter_rngs[index]).tolist()
        return torch.roll(x, shifts=(dy, dx), dims=(2, 3))

    def _features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Preprocess RGB [0, 1] images and run the truncated network on them (autocast if asked;
        the losses are always computed in fp32)."""
        x = self.preprocess(x).contiguous(memory_format=self.memory_format)
        precision = self.config.precision
        if precision == "fp32":
            return self.extractor(x)
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        with torch.autocast(self.device.type, dtype=dtype):
            features = self.extractor(x)
        return {k: v.float() for k, v in features.items()}

    def _objective_of(self, x: torch.Tensor, jittered: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The per-image losses of a step: network on the (jittered) images, priors on ``x``."""
        return self.objective(x, self._features(jittered))

    def _lrs(self) -> list[float]:
        return [c.lr * s.factor(self.step, c.steps) if on else 0.0
                for c, s, on in zip(self.configs, self.schedules, self.active)]

    def step_once(self) -> list[dict[str, float] | None]:
        """One step of every active trial; returns their log rows (loss measured before the update)."""
        lrs, active = self._lrs(), self.active
        for group, members in zip(self.optimizer.param_groups, self._group_members):
            lr = max(lrs[i] for i in members)  # equal for active members; stopped ones get no gradient
            if self.configs[members[0]].momentum_reset and group["lr"] != lr and self.step > 0:
                for i in members:
                    self.optimizer.state[self.params[i]] = {}  # momentum restarts at each lr change
            group["lr"] = lr
        mask = self._mask(active)
        start = time.perf_counter()
        measured: dict[str, Any] = {}

        def closure() -> torch.Tensor:
            self.optimizer.zero_grad(set_to_none=True)
            if self.config.compile == "reduce-overhead":
                torch.compiler.cudagraph_mark_step_begin()  # last step's graph outputs are consumed
            x = self.params[0] if len(self.params) == 1 else torch.cat(self.params)
            jittered = torch.cat([self._jittered(i, p) for i, p in enumerate(self.params)]) \
                if any(c.jitter for c in self.configs) else x
            total, parts = self._losses(x, jittered)
            loss = total.sum() if mask is None else torch.where(mask, total, torch.zeros_like(total)).sum()
            loss.backward()
            if not measured:  # L-BFGS calls the closure more than once: log the first
                # one device-to-host copy per step for every logged value
                values = torch.stack([total, *parts.values()]).detach().cpu().tolist()
                measured["total"], measured["parts"] = values[0], dict(zip(parts, values[1:]))
            return loss

        if isinstance(self.optimizer, torch.optim.LBFGS):
            self.optimizer.step(closure)
            if math.isfinite(measured["total"][0]):
                self.last_good[0].copy_(self.x.detach())
        else:
            with _count_saved_bytes(enabled=self.memory_bytes is None) as saved:
                closure()
            if self.memory_bytes is None:  # measured once, on the first step
                weights = sum(p.numel() * p.element_size() for p in self.extractor.parameters())
                self.memory_bytes = saved[0] + weights
            good = [i for i, on in enumerate(active) if on and math.isfinite(measured["total"][i])]
            if good:
                with torch.no_grad():
                    torch._foreach_copy_([self.last_good[i] for i in good], [self.params[i] for i in good])
            for i, p in enumerate(self.params):
                if i not in good:
                    p.grad = None  # a finished or diverging trial must not move
            self.optimizer.step()
        self._project()
        seconds = (time.perf_counter() - start) / max(sum(active), 1)  # each trial's share
        rows: list[dict[str, float] | None] = []
        for i, on in enumerate(active):
            if not on:
                rows.append(None)
                continue
            row = {"step": self.step + 1, "loss": measured["total"][i]}
            row.update({k: v[i] for k, v in measured["parts"].items()})
            row.update({"lr": lrs[i], "seconds": seconds})
            rows.append(row)
        return rows

    def _mask(self, active: list[bool]) -> torch.Tensor | None:
        """Which trials still count, as a device tensor (rebuilt only when that changes); None
        while all of them do."""
        if all(active):
            return None
        if getattr(self, "_mask_key", None) != active:
            self._mask_key, self._mask_value = list(active), torch.tensor(active, device=self.device)
        return self._mask_value

    @torch.no_grad()
    def _project(self) -> None:
        """After a step: the pixel-norm bound (IJCV) where asked, then back into [0, 1]."""
        for c, p in zip(self.configs, self.params):
            if c.pixel_bound:
                p.copy_(self.preprocess.bound_pixel_norm(p, c.pixel_bound))
        if self.config.clamp:  # shared by every trial of a batch
            torch._foreach_clamp_min_(self.params, 0.0)
            torch._foreach_clamp_max_(self.params, 1.0)

    def _step_explaining_failures(self) -> list[dict[str, float] | None]:
        """A step; running out of memory becomes a clear error naming a size that should fit, and
        a failed torch.compile one that says how to run without it."""
        try:
            return self.step_once()
        except Exception as exc:
            if self.config.compile and is_compile_failure(exc):
                from .errors import ConfigError
                reason = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
                raise ConfigError(f"torch.compile (mode {self.config.compile!r}) failed on this machine: "
                                  f"{reason[:300]}. Run without --compile (eager is the default)") from None
            if not (isinstance(exc, torch.OutOfMemoryError)
                    or isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)):
                raise
            from .errors import ResourceError
            size, batch = self.config.size, len(self.configs)
            smaller = max(8, int(size / 2 ** 0.5) // 8 * 8)  # memory grows with size^2 x batch
            raise ResourceError(
                f"out of memory on {self.device} at size {size} with {batch} trial(s) in the batch "
                f"({str(exc).splitlines()[0][:160]}): memory grows with size^2 x batch; size {smaller} "
                f"needs about half" + (f", or run the trials with --batch {max(1, batch // 2)}" if batch > 1 else "")
            ) from None

    def run(self, callbacks: Sequence[Callback] = ()) -> Result:
        """Run a single-trial inversion (see :meth:`run_all` for batches)."""
        if len(self.configs) != 1:
            raise ValueError("run() is for one trial; use run_all() for a batch")
        return self.run_all(callbacks)[0]

    def run_all(self, callbacks: Sequence[Callback] = ()) -> list[Result]:
        """Step until every trial is done, diverged or the run is asked to stop; then measure."""
        with frozen(self.model.module), _sigint_stops(self):
            _emit(callbacks, "on_start", self)
            while self.step < self.config.steps and self._stop_reason is None and any(self.active):
                rows = self._step_explaining_failures()
                pixels_ok = self._pixels_finite()
                for i, row in enumerate(rows):
                    if row is None:
                        continue
                    if not math.isfinite(row["loss"]) or not pixels_ok[i]:
                        self.statuses[i] = "diverged"
                        with torch.no_grad():
                            self.params[i].copy_(self.last_good[i])  # keep the last good image
                        rows[i] = None
                    else:
                        self.histories[i].append(row)
                self.step += 1
                _emit(callbacks, "on_step", self, rows)
            final = self._stop_reason or "done"
            self.statuses = [final if s == "running" else s for s in self.statuses]
            results = self._results()
            _emit(callbacks, "on_end", self, results)
        return results

    def _pixels_finite(self) -> list[bool]:
        """Whether each trial's pixels are still finite after its update, read to the host once
        for the whole batch (not one device sync per trial)."""
        with torch.no_grad():
            return torch.stack([torch.isfinite(p).all() for p in self.params]).tolist()

    def _results(self) -> list[Result]:
        images = torch.cat([p.detach() for p in self.params]).clamp(0, 1)
        with torch.no_grad():
            errors = self.objective.feature_error(self._features(images))
        return [self._result(i, images[i], {k: float(v[i]) for k, v in errors.items()})
                for i in range(len(self.configs))]

    def _memory_mb(self) -> float:
        """Peak CUDA memory, or on CPU one step's autograd memory (saved activations + weights)."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return (self.memory_bytes or 0) / 2**20

    def _result(self, i: int, image: torch.Tensor, errors: dict[str, float]) -> Result:
        config, history, status = self.configs[i], self.histories[i], self.statuses[i]
        target = self.target[i]
        times = [r["seconds"] for r in history[1:]] or [r["seconds"] for r in history] or [math.nan]
        summary = {
            "status": status,
            "steps": len(history),
            "psnr": metrics.psnr(image, target),
            "ssim": metrics.ssim(image, target),
            "feature_error": errors,
            "feature_error_total": sum(errors.values()),
            "ijcv_error": {k: metrics.ijcv_error(v) for k, v in errors.items()},
            "seconds_per_step": statistics.median(times),
            "seconds_total": sum(r["seconds"] for r in history),
            "batch_size": len(self.configs),
            "memory_mb": self._memory_mb(),
            "final_loss": history[-1]["loss"] if history else math.nan,
            "model": self.model.label,
            "pretrained": self.model.pretrained,
            "layers": list(self.layers),
            "device": str(self.device),
        }
        if status == "diverged":
            summary["message"] = (f"the loss became NaN/Inf at step {len(history) + 1}: the learning "
                                  f"rate ({config.lr:g}) is probably too high; the last good "
                                  f"image was kept")
        return Result(image.cpu(), target.cpu(), status, len(history), list(history), summary, config)


@contextmanager
def _count_saved_bytes(enabled: bool = True) -> Iterator[list[int]]:
    """Sum the bytes autograd saves for backward inside the block (the activation memory)."""
    total = [0]
    if not enabled:
        yield total
        return

    def pack(t: torch.Tensor) -> torch.Tensor:
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield total


def _emit(callbacks: Sequence[Callback], event: str, *args: Any) -> None:
    for cb in callbacks:
        method = getattr(cb, event, None)
        if method is not None:
            method(*args)


@contextmanager
def _sigint_stops(run: Inversion) -> Iterator[None]:
    """First Ctrl-C (or SIGTERM): finish the step, then stop cleanly ('interrupted', with a
    checkpoint); a second one aborts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if run._stop_reason == "interrupted":
            raise KeyboardInterrupt
        run.request_stop("interrupted")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


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
    from .recipes import with_recipe

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
    known = {(options.get("model", base.get("model")), options.get("weights", base.get("weights"))): model} \
        if isinstance(model, LoadedModel) else None
    config, header = with_recipe(base, options, models=known)
    if out is None:
        if resume:
            from .errors import RunFolderError
            raise RunFolderError("resume needs the run folder: pass out=...")
        callbacks = list(callbacks) + ([] if quiet else [_progress()])
        return Inversion(config, model).run(callbacks)
    from .runfolder import run_in_folder
    return run_in_folder(config, Path(out), resume=resume, model=model,
                         callbacks=list(callbacks), quiet=quiet, header=header)


def _progress() -> Callback:
    from .callbacks import ProgressBar
    return ProgressBar()
