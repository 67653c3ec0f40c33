"""The optimisation loop: ``Inversion(parts).run() -> Result``.

Data flow: target image -> preprocess -> features (once, detached; :mod:`featinv.optim.problem`);
image parameterisation (:mod:`featinv.optim.params`) -> ``x`` (RGB [0, 1]) -> transforms
(:mod:`featinv.optim.transforms`) -> preprocess -> truncated network -> objective -> backward ->
optimiser step (:mod:`featinv.optim.stepper`) -> projection. The parts are built by
:func:`featinv.optim.parts.build_parts` (from configs, with a parameterisation or objective of the
user's where given); callbacks observe the run (snapshots, log, progress) and may ask it to stop.
The loop itself never touches files, so the same code serves notebooks, the CLI and sweeps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch

from ..config import InvertConfig, resolved
from ..nets.extractor import frozen
from ..nets.models import LoadedModel
from ..nets.perf import compile_step, is_compile_failure
from ..nets.sizing import count_saved_bytes
from ..status import Status
from .compose import Sum
from .interrupts import running
from .params import ImageParam
from .parts import Parts, build_parts
from .restarts import Row, Slot
from .results import Result, summarize


class Callback(Protocol):
    """Observes a run. Every method is optional. ``rows`` and ``results`` have one entry per
    trial of the (possibly batched) run; a row is None for a trial that has stopped."""

    def on_start(self, run: Inversion) -> None: ...
    def on_step(self, run: Inversion, rows: list[dict[str, float] | None]) -> None: ...
    def on_end(self, run: Inversion, results: list[Result]) -> None: ...


class Inversion:
    """One inversion, or a batch of them sharing each forward/backward pass.

    A batch is a list of configs that agree on the model, layers, size and steps (see
    ``featinv.config.BATCH_SHARED``) and may differ in image, lr, schedule, TV and alpha-norm
    weights, seed, init, param and transforms. Each trial keeps its own image parameterisation,
    optimiser state and log; a trial with ``restarts: N`` runs N seeds side by side and keeps the
    one with the lowest final loss. The per-image losses are summed, so each image's gradient is
    its own (the network is in eval mode, so images do not interact). Most users call
    :func:`featinv.invert` instead.

    ``Inversion(configs, model, images, param=..., objective=...)`` builds the parts
    (:func:`~featinv.optim.parts.build_parts`); :meth:`from_parts` takes them built.
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
        self._start(build_parts(configs, model, images, param=param, objective=objective))

    @classmethod
    def from_parts(cls, parts: Parts) -> Inversion:
        run = cls.__new__(cls)
        run._start(parts)
        return run

    def _start(self, parts: Parts) -> None:
        self.configs, self.problem, self.restarts, self.stepper = (
            parts.configs,
            parts.problem,
            parts.restarts,
            parts.stepper,
        )
        self.slots = self.restarts.slots
        self.objective_spec = parts.objective
        self._losses = compile_step(self.problem.losses, self.config.compile)
        self.step = 0
        self.stop_reason: Status | None = None
        self.memory_bytes: int | None = None  # activations saved for backward + weights, one step

    # -- what callbacks read ---------------------------------------------------------------
    @property
    def config(self) -> InvertConfig:
        return self.configs[0]

    @property
    def device(self) -> torch.device:
        return self.problem.device

    def image(self, trial: int = 0) -> torch.Tensor:
        """Trial ``trial``'s current image ``[3, S, S]`` in [0, 1] (its best restart's)."""
        with torch.no_grad():
            return self.restarts.best(trial).param()[0].detach().clamp(0, 1)

    @property
    def histories(self) -> list[list[Row]]:
        return self.restarts.histories

    @property
    def history(self) -> list[Row]:
        return self.histories[0]

    @property
    def statuses(self) -> list[Status]:
        return self.restarts.statuses

    @property
    def active(self) -> list[bool]:
        return [s == Status.RUNNING for s in self.statuses]

    @property
    def group_of(self) -> list[int]:
        """Each trial's optimiser group (of its first restart)."""
        return [self.stepper.group_of[self.restarts.of(i)[0]] for i in range(len(self.configs))]

    # -- control -------------------------------------------------------------------------
    def request_stop(self, status: Status = Status.INTERRUPTED) -> None:
        """Ask the loop to stop after the current step (callbacks; Ctrl-C under
        :func:`featinv.optim.interrupts.stop_on_signals`)."""
        self.stop_reason = status

    def state_dict(self, index: int = 0) -> dict[str, Any]:
        """Everything needed to continue trial ``index`` exactly where it is (a checkpoint)."""
        slots = []
        for k in self.restarts.of(index):
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
        return {
            "step": self.step,
            "config": self.configs[index].to_dict(),
            "slots": slots,
            "optimizer": slots[0]["optimizer"],
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
    def run(self, callbacks: Sequence[Callback] = ()) -> Result:
        """Run a single-trial inversion (see :meth:`run_all` for batches)."""
        if len(self.configs) != 1:
            raise ValueError("run() is for one trial; use run_all() for a batch")
        return self.run_all(callbacks)[0]

    def run_all(self, callbacks: Sequence[Callback] = ()) -> list[Result]:
        """Step until every image is done, diverged or the run is asked to stop; then measure."""
        with frozen(self.problem.model.module), running(self):
            _emit(callbacks, "on_start", self)
            while self.step < self.config.steps and self.stop_reason is None and any(self.active):
                rows = self._step_explaining_failures()
                self.restarts.record(rows, self._params_finite())
                self.step += 1
                _emit(callbacks, "on_step", self, self.restarts.trial_rows(rows))
            self.restarts.finish(self.stop_reason or Status.DONE)
            results = self._results()
            _emit(callbacks, "on_end", self, results)
        return results

    def step_once(self) -> list[Row | None]:
        """One step of every running image; returns each image's log row (loss measured before
        the update; None for a stopped image)."""
        running = self.restarts.running
        lrs = self.stepper.set_lrs(self.step, running)
        start = time.perf_counter()
        measured: dict[str, Any] = {}
        with count_saved_bytes(enabled=self.memory_bytes is None) as saved:
            self.stepper.step(lambda: self._loss_and_gradients(running, measured))
        if self.memory_bytes is None:  # measured once, on the first step
            self.memory_bytes = saved[0] + sum(
                p.numel() * p.element_size() for p in self.problem.extractor.parameters()
            )
        self._project()
        seconds = (time.perf_counter() - start) / max(sum(running), 1)  # each image's share
        rows: list[Row | None] = []
        for k, on in enumerate(running):  # the columns of log.csv, in order
            parts = {name: values[k] for name, values in measured["parts"].items()}
            rows.append(
                {"step": self.step + 1, "loss": measured["total"][k], **parts, "lr": lrs[k], "seconds": seconds}
                if on
                else None
            )
        return rows

    def _loss_and_gradients(self, running: list[bool], measured: dict[str, Any]) -> torch.Tensor:
        """The closure the stepper calls: every image's loss and gradients. The first call of a
        step logs the losses, keeps each finite image as its last good one and stops the images
        that are done or diverging from moving."""
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
        mask = self._mask(running)
        loss = total.sum() if mask is None else torch.where(mask, total, torch.zeros_like(total)).sum()
        loss.backward()
        if not measured:  # L-BFGS may call the closure more than once: the first one counts
            values = torch.stack([total, *parts.values()]).detach().cpu().tolist()  # one copy to the host
            measured["total"], measured["parts"] = values[0], dict(zip(parts, values[1:]))
            good = [k for k, on in enumerate(running) if on and math.isfinite(values[0][k])]
            if good:
                with torch.no_grad():
                    torch._foreach_copy_(
                        [b for k in good for b in self.slots[k].last_good],
                        [t for k in good for t in self.slots[k].tensors],
                    )
            for k in set(range(len(self.slots))) - set(good):
                for t in self.slots[k].tensors:
                    t.grad = None  # a finished or diverging image must not move
        return loss

    def _transformed(self, slot: Slot, image: torch.Tensor) -> torch.Tensor:
        """What the network sees of ``slot``'s image this step: transformed, except for the
        last ``jitter_off_last`` steps."""
        c = slot.config
        if not slot.transforms or self.step >= c.steps - resolved(c.jitter_off_last, "jitter_off_last"):
            return image
        return slot.transforms(image)

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
        """After a step, each parameterisation's own projection (``project_()``: pixels are
        bounded and clamped; a module of the user's may define one)."""
        for s in self.slots:
            project = getattr(s.param, "project_", None)
            if callable(project):
                project()

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
            best = self.restarts.best(i)
            k = self.slots.index(best)
            result = self._result(i, best, images[k], {name: float(v[k]) for name, v in errors.items()})
            if len(self.restarts.of(i)) > 1:
                result.summary["restarts"] = [
                    {
                        "seed": self.slots[j].config.seed,
                        "status": self.slots[j].status,
                        "final_loss": self.slots[j].history[-1]["loss"] if self.slots[j].history else math.nan,
                        "feature_error_total": sum(float(v[j]) for v in errors.values()),
                    }
                    for j in self.restarts.of(i)
                ]
                result.summary["best_seed"] = best.config.seed
                if self.configs[i].diversity:  # keep them all, and say how much they differ
                    from .diversity import spread

                    result.restarts = [images[j].cpu() for j in self.restarts.of(i)]
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
        target = self.problem.target[self.slots.index(slot)]
        summary = summarize(
            image,
            target,
            errors,
            history,
            status,
            batch_size=len(self.slots),
            memory_mb=self._memory_mb(),
            model=self.problem.model.label,
            pretrained=self.problem.model.pretrained,
            layers=list(self.problem.layers),
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
        if config.judge:
            from ..nets.judge import judge_one

            summary["judge"] = judge_one(image.detach().cpu(), target.detach().cpu(), config.model)
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
