"""``featinv bench``: featinv's step against the floor and a naive peer, measured in one process.

For each case (model, layer, size, batch) it times, as the median of ``steps`` steps after
``warmup``:

- **floor**: one bare forward + backward-to-the-input of the truncated network, weights frozen
  (what any inversion must pay);
- **featinv**: one full optimisation step of :class:`~featinv.optim.inversion.Inversion` (preprocess,
  truncated forward, objective with TV, backward, Adam, clamp, logging);
- **naive**: the way common public code does it -- the whole network every step, the feature
  taken by a forward hook, weights left trainable (their gradients computed), Adam on the pixels;

and reports ``featinv_ops`` / ``floor_ops`` (aten ops per step: kernel launches on a GPU),
memory (``memory_mb``: peak allocated on CUDA, the process's peak RSS so far on CPU -- cumulative,
as freed memory stays in the heap; ``step_memory_mb``: one step's activations saved for backward
plus the weights), FLOPs per featinv step (torch's flop counter) and the achieved GFLOP/s.
Separately, ``batched`` rows compare 8 trials in one batch with the same 8 trials run one after
another. Ratios are what count on a noisy machine.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

DEFAULT_CASES = ("vgg16_bn:conv1_2,conv3_1,pool5", "resnet18:res2,res8")
DEFAULT_BATCHED_CASES = ("vgg16_bn:conv3_1", "resnet18:res2")


@dataclass(frozen=True)
class Case:
    model: str
    layer: str
    size: int
    batch: int


def parse_cases(specs: Sequence[str], sizes: Sequence[int], batches: Sequence[int]) -> list[Case]:
    """``["vgg16_bn:conv1_2,pool5"]`` x sizes x batches -> cases.

    >>> [c.layer for c in parse_cases(["resnet18:res2,res8"], [64], [1])]
    ['res2', 'res8']
    """
    cases = []
    for spec in specs:
        model, _, layers = spec.partition(":")
        for layer in filter(None, layers.split(",")):
            cases += [Case(model, layer, s, b) for s in sizes for b in batches]
    return cases


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], Any], device: torch.device, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def count_ops(fn: Callable[[], Any]) -> int:
    """How many non-view aten ops one call of ``fn`` runs: on a GPU, each is a kernel launch,
    and at small sizes launches, not arithmetic, set the time of a step. Deterministic, unlike
    a timing, so it shows overhead even on a noisy machine."""
    from torch.utils._python_dispatch import TorchDispatchMode

    count = 0

    class Counter(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            nonlocal count
            count += not func.is_view and func.namespace == "aten"
            return func(*args, **(kwargs or {}))

    with Counter():
        fn()
    return count


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:  # Linux: writing 5 resets the peak resident set size (VmHWM)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _hook_module(model: torch.nn.Module, node: str) -> torch.nn.Module:
    """The module whose output is graph node ``node`` ('layer1.1.relu_1' -> block 'layer1.1')."""
    try:
        return model.get_submodule(node)
    except AttributeError:
        return model.get_submodule(node.rsplit(".", 1)[0])


def naive_step_fn(model_name: str, layer: str, x0: torch.Tensor, target_image: torch.Tensor) -> Callable[[], None]:
    """A step written the common way: full network, hook, trainable weights (not featinv code)."""
    from torchvision.models import get_model

    from ..nets.layers import resolve

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = get_model(model_name, weights=None).to(x0.device).eval()  # weights stay trainable
    store: dict[str, torch.Tensor] = {}
    _hook_module(model, resolve(model, [layer])[layer]).register_forward_hook(
        lambda m, i, o: store.__setitem__("feature", o)
    )
    from ..nets.preprocess import PRESETS

    normalize = PRESETS["imagenet"]
    with torch.no_grad():
        model(normalize(target_image))
        target = store["feature"].detach()
    x = x0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=0.05)

    def step() -> None:
        optimizer.zero_grad()
        model(normalize(x))
        loss = (store["feature"] - target).pow(2).sum() / target.pow(2).sum()
        loss.backward()
        optimizer.step()

    return step


def floor_step_fn(run: Any, layer: str) -> Callable[[], None]:
    """The floor for ``run``'s batch: bare forward + backward-to-the-input of its extractor."""
    x = (
        run.problem.preprocess(run.problem.target)
        .contiguous(memory_format=run.problem.memory_format)
        .requires_grad_(True)
    )

    def floor_step() -> None:
        out = run.problem.extractor(x)[layer]
        out.backward(torch.ones_like(out))
        x.grad = None

    return floor_step


def measure(
    case: Case,
    device: torch.device,
    steps: int = 10,
    warmup: int = 3,
    naive: bool = True,
    precision: str = "fp32",
    compile_mode: str | None = None,
) -> dict:
    """Floor, featinv and naive seconds per step for one case, with memory and FLOPs. With
    ``compile_mode``, featinv's step goes through ``torch.compile`` and ``compile_s`` is the first
    step's time less a normal step's."""
    from torch.utils.flop_counter import FlopCounterMode

    from ..config import InvertConfig
    from ..optim.inversion import Inversion

    configs = [
        InvertConfig(
            model=case.model,
            weights="none",
            layers=(case.layer,),
            size=case.size,
            steps=10**6,
            seed=i,
            device=str(device),
            precision=precision,
            compile=compile_mode,
            param="pixel",
            lr=0.05,
            tv=0.5,
            transforms="none",  # the bare step at every depth: pool5's default transforms are timed in QUALITY.md
        )  # the pixel step (QUALITY.md times the others)
        for i in range(case.batch)
    ]
    _reset_peak(device)
    run = Inversion(configs)
    first = median_seconds(run.step_once, device, 1, 0)  # includes compiling, if asked
    featinv = median_seconds(run.step_once, device, steps, warmup)
    memory = peak_memory_mb(device)
    with FlopCounterMode(display=False) as counter:
        run.step_once()
    flops = counter.get_total_flops()

    floor_step = floor_step_fn(run, case.layer)
    floor = median_seconds(floor_step, device, steps, warmup)
    row = {
        **asdict(case),
        "device": str(device),
        "precision": precision,
        "compile": compile_mode,
        "compile_s": max(0.0, first - featinv) if compile_mode else 0.0,
        "floor_s": floor,
        "featinv_s": featinv,
        "featinv_over_floor": featinv / floor,
        "memory_mb": memory,
        "step_memory_mb": (run.memory_bytes or 0) / 2**20,
        "gflop_per_step": flops / 1e9,
        "featinv_ops": count_ops(run.step_once),
        "floor_ops": count_ops(floor_step),
        "gflops_per_s": flops / 1e9 / featinv,
    }
    if naive:
        start = torch.rand(case.batch, 3, case.size, case.size, device=device)
        step = naive_step_fn(case.model, case.layer, start, run.problem.target)
        row["naive_s"] = median_seconds(step, device, steps, warmup)
        row["naive_over_featinv"] = row["naive_s"] / featinv
    return row


def measure_batched(
    model: str, layer: str, size: int, device: torch.device, trials: int = 8, steps: int = 10, warmup: int = 3
) -> dict:
    """Seconds per trial-step: ``trials`` configs in one batch against the same trials run one
    after another (each single run timed over consecutive steps, as a sequential sweep runs).

    Also the floor per image at batch 1 and batch ``trials``: their ratio is the most batching
    can gain in the network (``floor_speedup``) -- if one image already keeps the cores busy,
    a batch has only featinv's per-step overheads left to share.
    """
    from ..config import InvertConfig
    from ..optim.inversion import Inversion

    configs = [
        InvertConfig(
            model=model,
            weights="none",
            layers=(layer,),
            size=size,
            steps=10**6,
            lr=0.01 * (1 + i),
            tv=0.1 * (i % 3),
            seed=i,
            device=str(device),
            param="pixel",
            transforms="none",  # as the single-trial bench: the bare step at every depth
        )
        for i in range(trials)
    ]
    batch = Inversion(configs)
    batched = median_seconds(batch.step_once, device, steps, warmup) / trials
    floor_batch = median_seconds(floor_step_fn(batch, layer), device, steps, warmup) / trials
    singles = [Inversion(c, batch.problem.model) for c in configs]
    sequential = statistics.mean(median_seconds(s.step_once, device, steps, warmup) for s in singles)
    floor_single = median_seconds(floor_step_fn(singles[0], layer), device, steps, warmup)
    return {
        "model": model,
        "layer": layer,
        "size": size,
        "trials": trials,
        "device": str(device),
        "sequential_s_per_trial_step": sequential,
        "batched_s_per_trial_step": batched,
        "batched_speedup": sequential / batched,
        "floor_single_s": floor_single,
        "floor_batched_s_per_image": floor_batch,
        "floor_speedup": floor_single / floor_batch,
    }


def environment(device: torch.device) -> dict:
    import torchvision

    env = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "processor": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def table(rows: list[dict], batched: list[dict]) -> str:
    lines = [
        f"{'model':<10} {'layer':<8} {'size':>4} {'batch':>5} {'floor ms':>9} {'featinv ms':>10} "
        f"{'/floor':>7} {'naive ms':>9} {'naive/featinv':>13} {'GFLOP/s':>8} {'step MB':>8} {'peak MB':>8} "
        f"{'ops featinv/floor':>17}"
    ]
    for r in rows:
        naive = (
            f"{r['naive_s'] * 1000:>9.1f} {r['naive_over_featinv']:>13.2f}" if "naive_s" in r else f"{'-':>9} {'-':>13}"
        )
        lines.append(
            f"{r['model']:<10} {r['layer']:<8} {r['size']:>4} {r['batch']:>5} {r['floor_s'] * 1000:>9.1f} "
            f"{r['featinv_s'] * 1000:>10.1f} {r['featinv_over_floor']:>7.2f} {naive} "
            f"{r['gflops_per_s']:>8.1f} {r.get('step_memory_mb', 0):>8.0f} {r['memory_mb']:>8.0f} "
            f"{str(r.get('featinv_ops', '-')) + '/' + str(r.get('floor_ops', '-')):>17}"
        )
    if batched:
        lines += [
            "",
            f"{'model':<10} {'layer':<8} {'size':>4} {'trials':>6} {'sequential ms/trial-step':>25} "
            f"{'batched ms/trial-step':>22} {'speedup':>8} {'floor speedup':>14}",
        ]
        for b in batched:
            lines.append(
                f"{b['model']:<10} {b['layer']:<8} {b['size']:>4} {b['trials']:>6} "
                f"{b['sequential_s_per_trial_step'] * 1000:>25.1f} {b['batched_s_per_trial_step'] * 1000:>22.1f} "
                f"{b['batched_speedup']:>7.2f}x {b['floor_speedup']:>13.2f}x"
            )
    return "\n".join(lines)
