"""``featinv bench --quality``: how natural and faithful the reconstructions are, on many photos.

For every photo x case (model:layer) x method it reports PSNR, SSIM, the PSNR of both images
downsampled 8x (layout and colour: what deep layers should keep), the normalised feature error
and the seconds per step, what an independent network makes of the reconstruction
(:mod:`featinv.nets.judge`: does it find the photo's own original first among every photo and
some distractors, does it keep the photo's class in its top 5, the cosine of its features), and
draws one image grid per case. Methods:

- ``default``  featinv with nothing set (the layer-adaptive defaults of :mod:`featinv.optim.defaults`);
- ``pixel``, ``fourier``, ``pyramid``, ``dip``  that parameterisation, everything else default;
- ``mahendran2016``, ``mahendran2015``  the paper recipes, at their own step counts;
- ``peer``     the recipe of the popular pytorch-cnn-visualizations code (SGD lr 1e4, momentum 0.9,
  lr / 10 every 40 steps from the first, 0.1 x normalised feature error + 1e-7 alpha^6 + 1e-8 TV^2
  summed over the ImageNet-normalised image, 201 steps), written here from its description;
- ``flat``     the photo's mean colour everywhere: the floor a reconstruction must beat.

``equal_time`` re-runs each parameterisation with as many steps as ``default`` took seconds,
so a slower step has to pay for itself.

>>> [m for m in METHODS if m not in PARAMS]
['default', 'mahendran2016', 'mahendran2015', 'peer', 'flat']
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from .. import metrics
from ..specs import PARAMS
from ..status import Status

if TYPE_CHECKING:
    from ..optim.problem import Problem

# The photos the layer-adaptive defaults were chosen on, and photos never looked at while choosing
# them: the table reports the second group on its own, so a default tuned to its photos shows.
TUNED = ("astronaut", "coffee", "rocket", "chelsea", "immunohistochemistry", "camera")
HELD_OUT = ("china", "flower", "brick", "clock")
PHOTOS = TUNED + HELD_OUT
CASES = (
    "vgg16_offline:conv1_2",
    "vgg16_offline:relu3_3",
    "vgg16_offline:relu4_3",
    "vgg16_offline:pool5",
    "efficientnet_lite0_offline:stage2",
    "efficientnet_lite0_offline:stage5",
)
METHODS = ("default", *PARAMS, "mahendran2016", "mahendran2015", "peer", "flat")


@dataclass
class Row:
    """One reconstruction's numbers."""

    photo: str
    model: str
    layer: str
    method: str
    steps: int
    psnr: float
    ssim: float
    psnr_8x: float
    feature_error: float
    seconds_per_step: float
    equal_time: bool = False
    param: str = ""  # the parameterisation that ran (what ``default`` chose)
    # what an independent network makes of it (featinv.nets.judge; 0 / NaN where not judged)
    judge_rank: int = 0  # of the photo's own original among every photo and the distractors
    judge_cosine: float = math.nan
    class_agreement: float = math.nan  # 1 if the original's top-1 class is in its top 5, else 0
    judge_confident: float = math.nan  # 1 if the judge gives the original's class >= 0.3


def psnr_downsampled(image: torch.Tensor, target: torch.Tensor, factor: int = 8) -> float:
    """PSNR of ``[3, H, W]`` images after averaging ``factor x factor`` blocks (layout and colour).

    >>> round(psnr_downsampled(torch.zeros(3, 16, 16), torch.full((3, 16, 16), 0.1)), 2)
    20.0
    """
    return metrics.psnr(F.avg_pool2d(image[None], factor)[0], F.avg_pool2d(target[None], factor)[0])


def peer_inversion(problem: Any, steps: int = 201, on_step: Any = None) -> tuple[torch.Tensor, float]:
    """The pytorch-cnn-visualizations recipe on ``problem``'s first target (see the module
    docstring): the image lives in ImageNet-normalised space, as that code has it. Returns the
    image ``[3, S, S]`` in [0, 1] and the seconds per step. ``on_step(step, image)`` (optional)
    sees the image after each step (benchmarks/time_to_picture.py)."""
    mean = torch.tensor([0.485, 0.456, 0.406], device=problem.device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=problem.device).view(1, 3, 1, 1)
    (layer,) = [r.name for r in problem.requests]
    target = problem.target_features[layer][:1]
    size = problem.target.shape[-1]
    gen = torch.Generator().manual_seed(0)
    z = (0.1 * torch.randn(1, 3, size, size, generator=gen)).to(problem.device).requires_grad_(True)
    optimizer = torch.optim.SGD([z], lr=1e4, momentum=0.9)
    start = time.perf_counter()
    for i in range(steps):
        optimizer.zero_grad()
        feature = problem.features(z * std + mean)[layer]
        loss = 0.1 * (target - feature).pow(2).sum() / target.pow(2).sum()
        loss = loss + 1e-7 * z.pow(6).sum()
        tv = ((z[..., :-1, :-1] - z[..., 1:, :-1]) ** 2 + (z[..., :-1, :-1] - z[..., :-1, 1:]) ** 2).sum()
        (loss + 1e-8 * tv).backward()
        optimizer.step()
        if i % 40 == 0:
            for group in optimizer.param_groups:
                group["lr"] /= 10
        if on_step is not None:
            with torch.no_grad():
                on_step(i + 1, torch.nan_to_num((z * std + mean).clamp(0, 1)[0], nan=0.5))
    seconds = (time.perf_counter() - start) / steps
    with torch.no_grad():
        image = (z * std + mean).clamp(0, 1)
    return torch.nan_to_num(image[0], nan=0.5).cpu(), seconds


def photo_source(photo: str) -> str:
    """A benchmark photo's image: a built-in photo by its NAME, or a file.

    >>> photo_source("coins"), photo_source("grace_hopper"), photo_source("my/photo.png")
    ('skimage:coins', 'matplotlib:grace_hopper', 'my/photo.png')
    """
    from ..files import SAMPLES

    return next((prefix + photo for prefix, names in SAMPLES.items() if photo in names), photo)


def _config(photo: str, model: str, layer: str, method: str, size: int, steps: int) -> dict[str, Any]:
    options: dict[str, Any] = {
        "image": photo_source(photo),
        "model": model,
        "layers": layer,
        "size": size,
        "steps": steps,
        "snapshot_every": 0,
    }
    if method in PARAMS:
        options["param"] = method
    elif method.startswith("mahendran"):
        options.pop("steps")
        options["recipe"] = method
    return options


def photo_problem(photo: str, model: str, layer: str, size: int, cache: dict) -> Problem:
    """One photo's problem at ``layer`` with the layer's default objective, for scoring an image
    made another way (the flat and peer rows, probes). ``cache`` ({(model, None): network}) is
    filled on first use.

    >>> problem = photo_problem("astronaut", "vgg16_offline", "relu1_2", 32, cache={})
    >>> photo = problem.target[0]
    >>> feature_error(problem, photo) < 1e-6 < feature_error(problem, photo.flip(-1))
    True
    """
    from ..config import from_dict
    from ..optim.problem import Problem

    config = from_dict(_config(photo, model, layer, "default", size, 1))
    problem = Problem([config], cache.get((model, None)))
    cache[(model, None)] = problem.model
    return problem


def feature_error(problem: Problem, image: torch.Tensor) -> float:
    """The normalised feature error of one image (C, H, W) against ``problem``'s first target,
    summed over its layers."""
    return float(sum(v[0] for v in problem.feature_errors(image[None].to(problem.device)).values()))


def run_case(
    model: str,
    layer: str,
    method: str,
    photos: Sequence[str],
    size: int,
    steps: int,
    cache: dict,
    equal_time_steps: dict[str, float] | None = None,
) -> list[tuple[Row, torch.Tensor, torch.Tensor]]:
    """Every photo through one (model, layer, method), as one batch: rows, images, targets.
    ``equal_time_steps`` ({photo: steps}) replaces ``steps`` photo by photo."""
    from ..optim.inversion import Inversion
    from ..optim.recipes import with_recipe

    out = []
    if method in ("flat", "peer"):
        for photo in photos:
            problem = photo_problem(photo, model, layer, size, cache)
            target = problem.target[0].cpu()
            if method == "flat":
                image, seconds, used = target.mean((1, 2), keepdim=True).expand_as(target).clone(), 0.0, 0
            else:
                image, seconds = peer_inversion(problem, 201)
                used = 201
            error = feature_error(problem, image)
            out.append((_row(photo, model, layer, method, used, image, target, error, seconds), image, target))
        return out
    configs = []
    for photo in photos:
        n = steps
        if equal_time_steps is not None:
            n = max(1, int(equal_time_steps[photo]))
        config, _ = with_recipe({}, _config(photo, model, layer, method, size, n), models=cache)
        configs.append(config)
    groups: dict[int, list[int]] = {}
    for i, c in enumerate(configs):  # equal-time runs differ in steps: batch those that agree
        groups.setdefault(c.steps, []).append(i)
    results: dict[int, Any] = {}
    for indices in groups.values():
        run = Inversion([configs[i] for i in indices], cache.get((model, None)))
        for i, result in zip(indices, run.run_all()):
            if result.status == Status.INTERRUPTED:  # Ctrl-C / SIGTERM stopped the run: stop the benchmark
                raise KeyboardInterrupt
            results[i] = result
    for i, photo in enumerate(photos):
        r = results[i]
        out.append(
            (
                _row(
                    photo,
                    model,
                    layer,
                    method,
                    r.steps,
                    r.image,
                    r.target,
                    r.summary["feature_error_total"],
                    r.summary["seconds_per_step"],
                    equal_time_steps is not None,
                    r.config.param,
                ),
                r.image,
                r.target,
            )
        )
    return out


def _row(
    photo: str,
    model: str,
    layer: str,
    method: str,
    steps: int,
    image: torch.Tensor,
    target: torch.Tensor,
    error: float,
    seconds: float,
    equal_time: bool = False,
    param: str | None = "",
) -> Row:
    return Row(
        photo,
        model,
        layer,
        method,
        steps,
        metrics.psnr(image, target),
        metrics.ssim(image, target),
        psnr_downsampled(image, target),
        float(error),
        seconds,
        equal_time,
        param or "",
    )


def run_benchmark(
    photos: Sequence[str] = PHOTOS,
    cases: Sequence[str] = CASES,
    methods: Sequence[str] = METHODS,
    size: int = 128,
    steps: int = 200,
    equal_time: bool = True,
    grid_dir: Any = None,
    progress: Any = print,
    on_case: Any = None,
    finished: Sequence[Row] = (),
    judged: bool = True,
) -> list[Row]:
    """The whole benchmark; writes ``grid_<model>_<layer>.png`` into ``grid_dir`` if given and
    calls ``on_case(rows so far)`` after each case (so a long run can be written as it goes).
    Cases that already have rows in ``finished`` (an interrupted run's) are kept, not run again.
    With ``judged``, every method's reconstructions are shown to an independent network
    (:func:`judge_rows`)."""
    from ..nets.models import load_model

    rows: list[Row] = list(finished)
    cache: dict = {}
    done_cases = {f"{r.model}:{r.layer}" for r in finished}
    for case in cases:
        model, _, layer = case.partition(":")
        if case in done_cases:
            progress(f"{case}: kept from the earlier run")
            continue
        if (model, None) not in cache:
            cache[(model, None)] = load_model(model)
        images: dict[str, list[torch.Tensor]] = {}
        targets: list[torch.Tensor] = []
        budget: dict[str, float] = {}
        defaults: list = []
        for method in methods:
            chosen = {r.param for r, _, _ in defaults}
            if method in PARAMS and chosen == {method}:  # the default already ran this parameterisation
                done = [(replace(r, method=method), im, t) for r, im, t in defaults]
            else:
                done = run_case(model, layer, method, photos, size, steps, cache)
            if method == "default":  # its time is the equal-time budget of the parameterisations
                defaults = done
                budget = {r.photo: r.seconds_per_step * r.steps for r, _, _ in done}
            rows += [r for r, _, _ in done]
            images[method] = [im for _, im, _ in done]
            targets = [t for _, _, t in done]
            progress(_summary_line(case, method, [r for r, _, _ in done]))
        if equal_time and budget:
            for method in [m for m in methods if m in PARAMS]:
                per_step = {
                    r.photo: r.seconds_per_step
                    for r in rows
                    if (r.model, r.layer, r.method, r.equal_time) == (model, layer, method, False)
                }
                if all(abs(budget[p] / max(per_step[p], 1e-9) - steps) < 0.1 * steps for p in photos):
                    continue  # as fast as the default: the equal-steps row is the equal-time row
                limit = {p: budget[p] / max(per_step[p], 1e-9) for p in photos}
                done = run_case(model, layer, method, photos, size, steps, cache, equal_time_steps=limit)
                rows += [r for r, _, _ in done]
                progress(_summary_line(case, method + " (equal time)", [r for r, _, _ in done]))
        if judged:
            rows = judge_rows(rows, model, layer, images, targets, photos, size, cache)
        if grid_dir is not None:
            save_grid(targets, images, photos, f"{model} {layer}", _grid_path(grid_dir, model, layer))
        if on_case is not None:
            on_case(rows)
    return rows


# Built-in photos that are in no benchmark: the judge must tell a reconstruction's photo from them too.
DISTRACTORS = ("coins", "hubble_deep_field", "retina", "motorcycle", "gravel", "grass", "cell", "grace_hopper")


def judge_rows(
    rows: list[Row],
    model: str,
    layer: str,
    images: dict[str, list[torch.Tensor]],
    targets: list[torch.Tensor],
    photos: Sequence[str],
    size: int,
    cache: dict,
) -> list[Row]:
    """``rows`` with the judge's verdict on each method's reconstructions of this case (the
    equal-time rows keep no images, and stay unjudged). The gallery is every benchmark photo plus
    the built-in :data:`DISTRACTORS` that are not among them."""
    from ..files import load_target
    from ..nets.judge import Judge, judge_for

    name = judge_for(model)
    if ("judge", name) not in cache:
        cache[("judge", name)] = Judge(name)
    judge = cache[("judge", name)]
    others = [load_target(photo_source(p), size) for p in DISTRACTORS if p not in photos and _available(p)]
    distractors = torch.stack(others) if others else None
    verdicts = {
        method: dict(zip(photos, judge.verdicts(torch.stack(done), torch.stack(targets), distractors)))
        for method, done in images.items()
        if len(done) == len(photos)
    }
    out = []
    for r in rows:
        v = (
            verdicts.get(r.method, {}).get(r.photo)
            if (r.model, r.layer, r.equal_time) == (model, layer, False)
            else None
        )
        if v is not None:
            r = replace(
                r,
                judge_rank=v.rank,
                judge_cosine=v.cosine,
                class_agreement=math.nan if v.class_agreement is None else float(v.class_agreement),
                judge_confident=math.nan if v.confident is None else float(v.confident),
            )
        out.append(r)
    return out


def _available(photo: str) -> bool:
    from ..files import SAMPLES

    return any(photo in names for names in SAMPLES.values())


def _grid_path(folder: Any, model: str, layer: str) -> Any:
    from pathlib import Path

    return Path(folder) / f"grid_{model}_{layer}.png"


def _summary_line(case: str, method: str, rows: Sequence[Row]) -> str:
    def mean(key: str) -> float:
        return sum(getattr(r, key) for r in rows) / len(rows)

    return (
        f"{case:38s} {method:22s} PSNR {mean('psnr'):5.2f} (min {min(r.psnr for r in rows):5.2f})  "
        f"SSIM {mean('ssim'):.3f}  PSNR8x {mean('psnr_8x'):5.2f}  feat {mean('feature_error'):.4f}  "
        f"{mean('seconds_per_step') * 1000:6.1f} ms/step"
    )


def save_grid(
    targets: Sequence[torch.Tensor], images: dict[str, list[torch.Tensor]], photos: Sequence[str], title: str, path: Any
) -> None:
    """A PNG: one row per method (the targets first), one column per photo, each row labelled."""
    from PIL import Image, ImageDraw

    from ..files import to_pil, write_bytes

    cell, label = 96, 120
    rows = [("target", list(targets))] + [(m, ims) for m, ims in images.items()]
    sheet = Image.new("RGB", (label + cell * len(photos), 18 + cell * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 2), title, fill="black")
    for r, (name, ims) in enumerate(rows):
        draw.text((4, 18 + r * cell + cell // 2 - 6), name, fill="black")
        for c, im in enumerate(ims):
            sheet.paste(to_pil(im).resize((cell, cell)), (label + c * cell, 18 + r * cell))
    import io

    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    write_bytes(path, buf.getvalue())


def table(rows: Sequence[Row], held_out: Sequence[str] = HELD_OUT) -> str:
    """Markdown: one line per (case, method, equal-time), means over photos and the worst photo's
    PSNR; where some photos are ``held_out``, their PSNR and SSIM again on their own."""
    cases = list(dict.fromkeys((r.model, r.layer) for r in rows))  # a merge interleaves runs' rows
    keys = sorted(
        dict.fromkeys((r.model, r.layer, r.method, r.equal_time) for r in rows),
        key=lambda k: (cases.index(k[:2]), k[3]),
    )
    split = any(r.photo in held_out for r in rows) and any(r.photo not in held_out for r in rows)
    extra = " held-out PSNR (worst) | held-out SSIM |" if split else ""
    lines = [
        f"| model | layer | method | steps | PSNR (worst) | SSIM |{extra} PSNR 8x | feature error | ms/step "
        "| judge: own photo first | class in top 5 (confident) | judge cosine |",
        "|---|---|---|---|---|---|" + "---|---|" * split + "---|---|---|---|---|---|",
    ]

    def mean(rs: Sequence[Row], key: str) -> float:
        return sum(getattr(r, key) for r in rs) / len(rs) if rs else math.nan

    for model, layer, method, equal in keys:
        mine = [r for r in rows if (r.model, r.layer, r.method, r.equal_time) == (model, layer, method, equal)]
        steps = sorted({r.steps for r in mine})
        steps_text = str(steps[0]) if len(steps) == 1 else f"{steps[0]}-{steps[-1]}"
        chosen = sorted({r.param for r in mine})
        name = method + (f" ({', '.join(chosen)})" if method == "default" else "") + (" (equal time)" if equal else "")
        out = [r for r in mine if r.photo in held_out]
        held = (
            f" {mean(out, 'psnr'):.2f} ({min(r.psnr for r in out):.2f}) | {mean(out, 'ssim'):.3f} |"
            if split and out
            else " - | - |"
            if split
            else ""
        )
        lines.append(
            f"| {model} | {layer} | {name} | {steps_text} | {mean(mine, 'psnr'):.2f} "
            f"({min(r.psnr for r in mine):.2f}) | {mean(mine, 'ssim'):.3f} |{held} {mean(mine, 'psnr_8x'):.2f} "
            f"| {mean(mine, 'feature_error'):.4f} | {mean(mine, 'seconds_per_step') * 1000:.1f} |"
            f"{judge_cells(mine)}"
        )
    return "\n".join(lines)


def judge_cells(rows: Sequence[Row]) -> str:
    """The judge's columns for one line of the table: how many photos it found first, how many kept
    their class in the top 5 (and among the photos it was confident about), the mean cosine.

    >>> seen = [Row("a", "m", "l", "x", 1, 20, 0.5, 20, 0.1, 0.1, judge_rank=1, judge_cosine=0.8,
    ...             class_agreement=1.0, judge_confident=1.0),
    ...         Row("b", "m", "l", "x", 1, 20, 0.5, 20, 0.1, 0.1, judge_rank=3, judge_cosine=0.4,
    ...             class_agreement=0.0, judge_confident=0.0)]
    >>> judge_cells(seen)
    ' 1/2 | 1/2 (1/1) | 0.60 |'
    """
    judged = [r for r in rows if r.judge_rank]
    if not judged:
        return " - | - | - |"
    first = sum(r.judge_rank == 1 for r in judged)
    classed = [r for r in judged if math.isfinite(r.class_agreement)]
    sure = [r for r in classed if r.judge_confident == 1]
    agree = (
        f"{sum(r.class_agreement == 1 for r in classed)}/{len(classed)} "
        f"({sum(r.class_agreement == 1 for r in sure)}/{len(sure)})"
        if classed
        else "- (no classifier)"
    )
    cosine = sum(r.judge_cosine for r in judged) / len(judged)
    return f" {first}/{len(judged)} | {agree} | {cosine:.2f} |"


def to_json(rows: Sequence[Row]) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(r).items()} for r in rows
    ]


def from_json(items: Sequence[dict[str, Any]]) -> list[Row]:
    """The inverse of :func:`to_json` (a missing number comes back as NaN).

    >>> row = Row("camera", "vgg16_offline", "pool5", "flat", 0, 14.1, float("nan"), 15.0, 1.0, 0.0)
    >>> from_json(to_json([row]))[0].ssim
    nan
    """
    return [Row(**{k: (float("nan") if v is None else v) for k, v in item.items()}) for item in items]  # type: ignore[arg-type]
