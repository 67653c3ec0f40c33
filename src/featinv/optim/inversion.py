"""The optimisation loop: ``invert(config) -> Result``.

Data flow: target image -> preprocess -> features (once, detached; :mod:`featinv.optim.problem`);
image parameterisation (:mod:`featinv.optim.params`) -> ``x`` (RGB [0, 1]) -> transforms
(:mod:`featinv.optim.transforms`) -> preprocess -> truncated network -> objective -> backward ->
optimiser step (:mod:`featinv.optim.stepper`) -> projection (pixels only). Values left to the layer
are filled in by :mod:`featinv.optim.defaults` once the layer's stride is known. Callbacks observe
the run (snapshots, log, progress) and may ask it to stop; the loop itself never touches files, so
the same code serves notebooks, the CLI and sweeps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ..config import InvertConfig, resolved
from ..files import load_target
from ..nets.extractor import frozen
from ..nets.models import LoadedModel
from ..nets.perf import compile_step, is_compile_failure
from ..nets.sizing import count_saved_bytes
from ..status import Status
from .compose import Sum
from .defaults import resolve_defaults, transform_amounts
from .interrupts import running
from .params import ImageParam, PixelParam, make_param
from .problem import Problem, resolve_device  # noqa: F401 - resolve_device: re-exported
from .results import Result, summarize
from .stepper import Stepper
from .transforms import Transforms


class Callback(Protocol):
    """Observes a run. Every method is optional. ``rows`` and ``results`` have one entry per
    trial of the (possibly batched) run; a row is None for a trial that has stopped."""

    def on_start(self, run: Inversion) -> None: ...
    def on_step(self, run: Inversion, rows: list[dict[str, float] | None]) -> None: ...
    def on_end(self, run: Inversion, results: list[Result]) -> None: ...


@dataclass
class Slot:
    """One image being optimised: a trial, or one restart of a trial."""

    trial: int
    config: InvertConfig  # the trial's config with this restart's seed
    param: torch.nn.Module  # an ImageParam, or a module of the user's (forward() -> [1, 3, S, S])
    transforms: Transforms
    last_good: list[torch.Tensor]  # the parameters after the last finite step (buffers, copied into)
    history: list[dict[str, float]] = field(default_factory=list)
    status: Status = Status.RUNNING

    def __post_init__(self) -> None:
        self.tensors: list[torch.Tensor] = list(self.param.parameters())  # once: the loop touches them every step


def start_image(config: InvertConfig, images: Mapping[str, bytes | torch.Tensor] | None = None) -> torch.Tensor | None:
    """The image a parameterisation starts from: ``[1, 3, S, S]``, or None for its own seeded
    random start (``noise``)."""
    if config.init == "noise":
        return None
    if config.init == "grey":
        return torch.full((1, 3, config.size, config.size), 0.5)
    return load_target(config.init, config.size, images)[None].clamp(0, 1)


def _restart_configs(config: InvertConfig) -> list[InvertConfig]:
    """A trial's restarts: the same config with seeds ``seed, seed + 1, ...``."""
    return [config if k == 0 else config.replace(seed=config.seed + k) for k in range(config.restarts)]


def _check_batchable(configs: Sequence[InvertConfig]) -> None:
    from ..config import BATCH_SHARED, batch_key
    from ..errors import ConfigError

    if not configs:
        raise ConfigError("an inversion needs at least one config")
    if len({batch_key(c) for c in configs}) > 1:
        raise ConfigError(f"configs in one batch must agree on {', '.join(BATCH_SHARED)}")
    if configs[0].optimizer == "lbfgs" and (len(configs) > 1 or configs[0].restarts > 1):
        raise ConfigError("L-BFGS runs one trial at a time, without restarts (it has a single parameter group)")


def _check_parts(configs: Sequence[InvertConfig], param: torch.nn.Module | None, objective: Sum | None) -> None:
    """A module or objective of the user's drives one trial: there is one of each."""
    from ..errors import ConfigError
    from ..specs import CUSTOM_PARAM

    if param is not None and (len(configs) > 1 or configs[0].restarts > 1):
        raise ConfigError(
            "your own parameterisation is one module: it runs one trial without restarts "
            f"(got {len(configs)} trial(s), restarts {configs[0].restarts})"
        )
    if (param is not None) != (configs[0].param == CUSTOM_PARAM):
        raise ConfigError(
            "param 'custom' is an nn.Module of your own, passed from Python "
            "(featinv.invert(..., param=module)); from a config, use pixel, fourier, pyramid or dip"
        )
    if objective is not None and len(configs) > 1:
        raise ConfigError("an objective of your own drives one trial (a batch builds its own from the configs)")


def _user_param(module: torch.nn.Module, size: int, device: torch.device) -> torch.nn.Module:
    """The user's parameterisation, on the run's device, checked: ``forward()`` gives
    ``[1, 3, size, size]`` and something is optimised."""
    from ..errors import ConfigError

    module.to(device)
    if not any(p.requires_grad for p in module.parameters()):
        raise ConfigError(f"your parameterisation ({type(module).__name__}) has no parameters to optimise")
    with torch.no_grad():
        image = module()
    shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
    if shape != (1, 3, size, size):
        raise ConfigError(
            f"your parameterisation's forward() must return an image [1, 3, {size}, {size}] "
            f"in [0, 1] (size {size}), got {shape}"
        )
    return module


class Inversion:
    """One inversion, or a batch of them sharing each forward/backward pass.

    A batch is a list of configs that agree on the model, layers, size and steps (see
    ``featinv.config.BATCH_SHARED``) and may differ in image, lr, schedule, TV and alpha-norm
    weights, seed, init, param and transforms. Each trial keeps its own image parameterisation,
    optimiser state and log; a trial with ``restarts: N`` runs N seeds side by side and keeps the
    one with the lowest final loss. The per-image losses are summed, so each image's gradient is
    its own (the network is in eval mode, so images do not interact). Most users call
    :func:`invert` instead.

    The parts: a :class:`~featinv.optim.problem.Problem` (network, targets, objective), one
    :class:`~featinv.optim.params.ImageParam` and :class:`~featinv.optim.transforms.Transforms` per image, a
    :class:`~featinv.optim.stepper.Stepper`; this class runs the loop and keeps the logs.
    Everything that can fail on bad input (image, model, layers) fails in the constructor.
    """

    def __init__(
        self,
        configs: InvertConfig | Sequence[InvertConfig],
        model: LoadedModel | None = None,
        images: Mapping[str, bytes | torch.Tensor] | None = None,
        *,
        param: torch.nn.Module | None = None,
        objective: Sum | None = None,
    ) -> None:
        configs = [configs] if isinstance(configs, InvertConfig) else list(configs)
        _check_batchable(configs)
        _check_parts(configs, param, objective)
        slot_configs = [(i, c) for i, config in enumerate(configs) for c in _restart_configs(config)]
        self.problem = Problem([c for _, c in slot_configs], model, images)
        self.configs = [
            resolve_defaults(c.replace(layers=self.problem.layers), self.problem.stride) for c in configs
        ]  # resolved, for config.yaml
        self.objective_spec = objective
        self.slots: list[Slot] = []
        for i, c in slot_configs:
            c = self.configs[i].replace(seed=c.seed)
            image_param = (
                _user_param(param, c.size, self.device)
                if param is not None
                else make_param(
                    resolved(c.param, "param"),
                    c.size,
                    c.seed,
                    start_image(c, images),
                    resolved(c.chroma_scale, "chroma_scale"),
                ).to(self.device)
            )
            self.slots.append(
                Slot(
                    i,
                    c,
                    image_param,
                    Transforms(transform_amounts(c), c.seed + 1),
                    [t.detach().clone() for t in image_param.parameters()],
                )
            )
        # which images belong to each trial: read several times a step, fixed for the run
        self._trial_slots = [[k for k, s in enumerate(self.slots) if s.trial == i] for i in range(len(configs))]
        self.problem.set_objective([s.config for s in self.slots], objective)
        self._losses = compile_step(self.problem.losses, configs[0].compile)
        self.stepper = Stepper([s.config for s in self.slots], [s.tensors for s in self.slots])
        self.step = 0
        self.stop_reason: Status | None = None
        self.memory_bytes: int | None = None  # activations saved for backward + weights, one step

    # -- the parts, and single-trial views (the common case) ------------------------------
    @property
    def device(self) -> torch.device:
        return self.problem.device

    @property
    def model(self) -> LoadedModel:
        return self.problem.model

    @property
    def preprocess(self) -> Any:
        return self.problem.preprocess

    @property
    def extractor(self) -> Any:
        return self.problem.extractor

    @property
    def memory_format(self) -> torch.memory_format:
        return self.problem.memory_format

    @property
    def target(self) -> torch.Tensor:
        return self.problem.target

    @property
    def objective(self) -> Any:
        return self.problem.objective

    @property
    def layers(self) -> tuple[str, ...]:
        return self.problem.layers

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.stepper.optimizer

    @property
    def group_of(self) -> list[int]:
        """Each trial's optimiser group (of its first restart)."""
        return [self.stepper.group_of[self._slots_of(i)[0]] for i in range(len(self.configs))]

    @property
    def config(self) -> InvertConfig:
        return self.configs[0]

    def _slots_of(self, trial: int) -> list[int]:
        return self._trial_slots[trial]

    def best_slot(self, trial: int) -> Slot:
        """The trial's restart with the lowest latest loss, a diverged one only if all diverged
        (its only one without restarts)."""
        slots = [self.slots[k] for k in self._slots_of(trial)]
        return min(slots, key=lambda s: (s.status == Status.DIVERGED, s.history[-1]["loss"] if s.history else math.inf))

    def image(self, trial: int = 0) -> torch.Tensor:
        """Trial ``trial``'s current image ``[3, S, S]`` in [0, 1] (its best restart's)."""
        with torch.no_grad():
            return self.best_slot(trial).param()[0].detach().clamp(0, 1)

    @property
    def histories(self) -> list[list[dict[str, float]]]:
        return [self.best_slot(i).history for i in range(len(self.configs))]

    @property
    def history(self) -> list[dict[str, float]]:
        return self.histories[0]

    @property
    def statuses(self) -> list[Status]:
        """Each trial's status: running while any of its restarts runs."""
        out = []
        for i in range(len(self.configs)):
            mine = [self.slots[k].status for k in self._slots_of(i)]
            out.append(
                Status.RUNNING
                if Status.RUNNING in mine
                else self.best_slot(i).status
                if self.best_slot(i).history
                else mine[0]
            )
        return out

    @property
    def active(self) -> list[bool]:
        return [s == Status.RUNNING for s in self.statuses]

    # -- control -------------------------------------------------------------------------
    def request_stop(self, status: Status = Status.INTERRUPTED) -> None:
        """Ask the loop to stop after the current step (callbacks; Ctrl-C under
        :func:`featinv.optim.interrupts.stop_on_signals`)."""
        self.stop_reason = status

    def state_dict(self, index: int = 0) -> dict[str, Any]:
        """Everything needed to continue trial ``index`` exactly where it is (a checkpoint)."""
        slots = []
        for k in self._slots_of(index):
            slot = self.slots[k]
            slots.append(
                {
                    "param": {n: t.detach().cpu().clone() for n, t in slot.param.state_dict().items()},
                    "last_good": [t.cpu().clone() for t in slot.last_good],
                    "optimizer": self.stepper.state_dict(k),
                    "history": list(slot.history),
                    "status": slot.status.value,  # a plain str: torch.load(weights_only) refuses classes
                    "transforms_rng": slot.transforms.get_state(),
                }
            )
        first = slots[0]
        return {
            "step": self.step,
            "config": self.configs[index].to_dict(),
            "slots": slots,
            "optimizer": first["optimizer"],
            "history": list(self.histories[index]),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue a single trial from :meth:`state_dict` (resuming runs one trial at a time)."""
        if len(self.configs) != 1:
            raise ValueError("load_state_dict resumes a single-trial Inversion")
        slots = state["slots"] if "slots" in state else [_legacy_slot(state)]
        if len(slots) != len(self.slots):
            raise ValueError(f"the checkpoint has {len(slots)} restart(s), this run {len(self.slots)}")
        for slot, saved in zip(self.slots, slots):
            slot.param.load_state_dict(saved["param"])
            with torch.no_grad():
                for buffer, value in zip(slot.last_good, saved["last_good"]):
                    buffer.copy_(value)
            slot.history = list(saved["history"])
            slot.status = Status.DIVERGED if saved.get("status") == Status.DIVERGED else Status.RUNNING
            if saved.get("transforms_rng") is not None:
                slot.transforms.set_state(saved["transforms_rng"])
        self.stepper.load_state_dicts([s["optimizer"] for s in slots])
        self.step = int(state["step"])

    # -- the loop ------------------------------------------------------------------------
    def _transformed(self, slot: Slot, image: torch.Tensor) -> torch.Tensor:
        """What the network sees of ``slot``'s image this step: transformed, except for the
        last ``jitter_off_last`` steps."""
        c = slot.config
        if not slot.transforms or self.step >= c.steps - c.jitter_off_last:
            return image
        return slot.transforms(image)

    def step_once(self) -> list[dict[str, float] | None]:
        """One step of every running image; returns each trial's log row (loss measured before
        the update; None for a stopped trial)."""
        running = [s.status == Status.RUNNING for s in self.slots]
        lrs = self.stepper.set_lrs(self.step, running)
        mask = self._mask(running)
        start = time.perf_counter()
        measured: dict[str, Any] = {}

        def closure() -> torch.Tensor:
            self.stepper.zero_grad()
            if self.config.compile == "reduce-overhead":
                torch.compiler.cudagraph_mark_step_begin()  # last step's graph outputs are consumed
            images = [s.param() for s in self.slots]
            x = images[0] if len(images) == 1 else torch.cat(images)
            seen = (
                torch.cat([self._transformed(s, im) for s, im in zip(self.slots, images)])
                if any(s.transforms for s in self.slots)
                else x
            )
            total, parts = self._losses(x, seen)
            loss = total.sum() if mask is None else torch.where(mask, total, torch.zeros_like(total)).sum()
            loss.backward()
            if not measured:  # L-BFGS calls the closure more than once: log the first
                # one device-to-host copy per step for every logged value
                values = torch.stack([total, *parts.values()]).detach().cpu().tolist()
                measured["total"], measured["parts"] = values[0], dict(zip(parts, values[1:]))
            return loss

        if self.stepper.lbfgs:
            slot = self.slots[0]
            before = [t.detach().clone() for t in slot.tensors]
            self.stepper.step(closure)
            if math.isfinite(measured["total"][0]):  # the image the finite loss was measured on
                torch._foreach_copy_(slot.last_good, before)
        else:
            with count_saved_bytes(enabled=self.memory_bytes is None) as saved:
                closure()
            if self.memory_bytes is None:  # measured once, on the first step
                weights = sum(p.numel() * p.element_size() for p in self.extractor.parameters())
                self.memory_bytes = saved[0] + weights
            good = [k for k, on in enumerate(running) if on and math.isfinite(measured["total"][k])]
            if good:
                with torch.no_grad():
                    torch._foreach_copy_(
                        [b for k in good for b in self.slots[k].last_good],
                        [t for k in good for t in self.slots[k].tensors],
                    )
            for k, slot in enumerate(self.slots):
                if k not in good:
                    for t in slot.tensors:
                        t.grad = None  # a finished or diverging image must not move
            self.stepper.step()
        self._project()
        seconds = (time.perf_counter() - start) / max(sum(running), 1)  # each image's share
        rows: list[dict[str, float] | None] = []
        for k, on in enumerate(running):
            if not on:
                rows.append(None)
                continue
            row = {"step": self.step + 1, "loss": measured["total"][k]}
            row.update({name: v[k] for name, v in measured["parts"].items()})
            row.update({"lr": lrs[k], "seconds": seconds})
            rows.append(row)
        return rows

    def _mask(self, running: list[bool]) -> torch.Tensor | None:
        """Which images still count, as a device tensor (rebuilt only when that changes); None
        while all of them do."""
        if all(running):
            return None
        if getattr(self, "_mask_key", None) != running:
            self._mask_key, self._mask_value = list(running), torch.tensor(running, device=self.device)
        return self._mask_value

    @torch.no_grad()
    def _project(self) -> None:
        """After a step, for pixel parameterisations: the pixel-norm bound (IJCV) where asked,
        then back into [0, 1] (the others map into [0, 1] by construction)."""
        for s in self.slots:
            if not isinstance(s.param, PixelParam) and callable(getattr(s.param, "project_", None)):
                s.param.project_()  # type: ignore[operator]
        pixels = [(s.param, s.config) for s in self.slots if isinstance(s.param, PixelParam)]
        for param, config in pixels:
            if config.pixel_bound:
                param.pixels.copy_(self.preprocess.bound_pixel_norm(param.pixels, config.pixel_bound))
        if pixels and self.config.clamp:  # shared by every trial of a batch
            tensors: list[torch.Tensor] = [param.pixels for param, _ in pixels]
            torch._foreach_clamp_min_(tensors, 0.0)
            torch._foreach_clamp_max_(tensors, 1.0)

    def _step_explaining_failures(self) -> list[dict[str, float] | None]:
        """A step; running out of memory becomes a clear error naming a size that should fit, and
        a failed torch.compile one that says how to run without it."""
        try:
            return self.step_once()
        except Exception as exc:
            if self.config.compile and is_compile_failure(exc):
                from ..errors import ConfigError

                reason = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
                raise ConfigError(
                    f"torch.compile (mode {self.config.compile!r}) failed on this machine: "
                    f"{reason[:300]}. Run without --compile (eager is the default)"
                ) from None
            if not (
                isinstance(exc, torch.OutOfMemoryError)
                or isinstance(exc, RuntimeError)
                and "can't allocate memory" in str(exc)
            ):
                raise
            from ..errors import ResourceError

            size, batch = self.config.size, len(self.slots)
            smaller = max(8, int(size / 2**0.5) // 8 * 8)  # memory grows with size^2 x batch
            raise ResourceError(
                f"out of memory on {self.device} at size {size} with {batch} image(s) in the batch "
                f"({str(exc).splitlines()[0][:160]}): memory grows with size^2 x batch; size {smaller} "
                f"needs about half" + (f", or run the trials with --batch {max(1, batch // 2)}" if batch > 1 else "")
            ) from None

    def run(self, callbacks: Sequence[Callback] = ()) -> Result:
        """Run a single-trial inversion (see :meth:`run_all` for batches)."""
        if len(self.configs) != 1:
            raise ValueError("run() is for one trial; use run_all() for a batch")
        return self.run_all(callbacks)[0]

    def run_all(self, callbacks: Sequence[Callback] = ()) -> list[Result]:
        """Step until every image is done, diverged or the run is asked to stop; then measure."""
        with frozen(self.model.module), running(self):
            _emit(callbacks, "on_start", self)
            while self.step < self.config.steps and self.stop_reason is None and any(self.active):
                rows = self._step_explaining_failures()
                finite = self._params_finite()
                for slot, row, ok in zip(self.slots, rows, finite):
                    if row is None:
                        continue
                    if not math.isfinite(row["loss"]) or not ok:
                        slot.status = Status.DIVERGED
                        with torch.no_grad():
                            torch._foreach_copy_(slot.tensors, slot.last_good)  # keep the last good image
                    else:
                        slot.history.append(row)
                self.step += 1
                _emit(callbacks, "on_step", self, self._trial_rows(rows))
            final = self.stop_reason or Status.DONE
            for slot in self.slots:
                if slot.status == Status.RUNNING:
                    slot.status = final
            results = self._results()
            _emit(callbacks, "on_end", self, results)
        return results

    def _trial_rows(self, rows: list[dict[str, float] | None]) -> list[dict[str, float] | None]:
        """Each trial's row of this step: its best restart's (None if none of them stepped)."""
        out = []
        for i in range(len(self.configs)):
            mine = [
                row
                for k in self._slots_of(i)
                if (row := rows[k]) is not None and self.slots[k].status == Status.RUNNING
            ]
            out.append(min(mine, key=lambda r: r["loss"]) if mine else None)
        return out

    def _params_finite(self) -> list[bool]:
        """Whether each image's parameters are still finite after its update, read to the host
        once for the whole batch (not one device sync per image)."""
        counts = [len(s.tensors) for s in self.slots]
        with torch.no_grad():
            flags = torch.stack([torch.isfinite(t).all() for s in self.slots for t in s.tensors]).tolist()
        out, start = [], 0
        for n in counts:
            out.append(all(flags[start : start + n]))
            start += n
        return out

    def _results(self) -> list[Result]:
        with torch.no_grad():
            images = torch.cat([s.param() for s in self.slots]).detach().clamp(0, 1)
        errors = self.problem.feature_errors(images)
        results = []
        for i in range(len(self.configs)):
            best = self.best_slot(i)
            k = self.slots.index(best)
            result = self._result(i, best, images[k], {name: float(v[k]) for name, v in errors.items()})
            if len(self._slots_of(i)) > 1:
                result.summary["restarts"] = [
                    {
                        "seed": self.slots[j].config.seed,
                        "status": self.slots[j].status,
                        "final_loss": self.slots[j].history[-1]["loss"] if self.slots[j].history else math.nan,
                        "feature_error_total": sum(float(v[j]) for v in errors.values()),
                    }
                    for j in self._slots_of(i)
                ]
                result.summary["best_seed"] = best.config.seed
                if self.configs[i].diversity:  # keep them all, and say how much they differ
                    from .diversity import spread

                    result.restarts = [images[j].cpu() for j in self._slots_of(i)]
                    result.summary["diversity"] = spread(result.restarts)
            results.append(result)
        return results

    def _memory_mb(self) -> float:
        """Peak CUDA memory, or on CPU one step's autograd memory (saved activations + weights)."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return (self.memory_bytes or 0) / 2**20

    def _result(self, i: int, slot: Slot, image: torch.Tensor, errors: dict[str, float]) -> Result:
        config, history, status = self.configs[i], slot.history, slot.status
        target = self.target[self.slots.index(slot)]
        summary = summarize(
            image,
            target,
            errors,
            history,
            status,
            batch_size=len(self.slots),
            memory_mb=self._memory_mb(),
            model=self.model.label,
            pretrained=self.model.pretrained,
            layers=list(self.layers),
            param=config.param,
            device=str(self.device),
        )
        if status == Status.DIVERGED:
            summary["message"] = (
                f"the loss became NaN/Inf at step {len(history) + 1}: the learning "
                f"rate ({config.lr:g}) is probably too high; the last good "
                f"image was kept"
            )
        if not isinstance(slot.param, ImageParam):
            summary["param_module"] = type(slot.param).__name__
        if self.objective_spec is not None:
            summary["objective"] = repr(self.objective_spec)
        for key, value in (("channels", config.channels), ("window", self.problem.window_pixels(config))):
            if value:
                summary[key] = value  # type: ignore[literal-required]
        return Result(image.cpu(), target.cpu(), status, len(history), list(history), summary, config)


def _legacy_slot(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint written before parameterisations existed (pixels only) as one slot."""
    return {
        "param": {"pixels": state["x"]},
        "last_good": [state["last_good"]],
        "optimizer": state["optimizer"],
        "history": state["history"],
        "status": Status.RUNNING,
        "transforms_rng": state.get("jitter_rng"),
    }


def _emit(callbacks: Sequence[Callback], event: str, *args: Any) -> None:
    for cb in callbacks:
        method = getattr(cb, event, None)
        if method is not None:
            method(*args)
