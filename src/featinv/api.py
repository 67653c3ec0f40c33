"""``featinv.invert``: one call from Python, above the loop (:mod:`featinv.optim.inversion`) and the run
folders (:mod:`featinv.runs.runfolder`) it chooses between.

Images may be what a notebook holds (a Pillow image, a numpy array, a tensor: see
:mod:`featinv.files`); the config then names them by kind, size and a digest of their pixels, and a
run folder keeps its target in ``target.png``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .config import InvertConfig
from .files import ImageSource, describe, in_memory, read_image
from .nets.models import LoadedModel, module_name
from .optim.callbacks import ProgressBar, Snapshots, in_notebook
from .optim.compose import Sum
from .optim.inversion import Callback, Inversion
from .optim.results import Result
from .options import docs as options_docs
from .specs import CUSTOM_PARAM


def invert(
    image: ImageSource | None = None,
    *,
    config: InvertConfig | None = None,
    model: str | LoadedModel | torch.nn.Module | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    quiet: bool | None = None,
    live: bool | None = None,
    param: str | torch.nn.Module | None = None,
    objective: Sum | None = None,
    **options: Any,
) -> Result:
    """Reconstruct ``image`` from a network's features. Keyword options are config fields (listed
    at the end, with their defaults).

    ``image`` (and ``init``) is a file, ``skimage:NAME``, or an image in memory: a Pillow image, a
    numpy array ``[H, W, 3]`` or a tensor ``[3, H, W]`` (uint8 0-255, or floats in [0, 1]).

    ``model`` is a registry name (see :func:`featinv.nets.models.load_model`), a loaded model, or
    any ``nn.Module`` of your own (preprocessing then defaults to torchvision's ImageNet one;
    set ``preprocess=...`` otherwise). A run of your own module resumes by passing it again. Your
    module's weights, train/eval mode and ``requires_grad`` are left as they were; it is moved to the
    run's device (``device``: CUDA when present), where it stays.

    ``param`` is a built-in parameterisation's name (``pixel``, ``fourier``, ``pyramid``, ``dip``) or
    one of your own: any ``nn.Module`` whose ``forward()``
    returns the image ``[1, 3, size, size]`` in [0, 1]; its parameters are what is optimised and
    checkpoints hold its ``state_dict()`` (the config records ``param: custom``; a run resumes by
    passing the module again). ``objective`` is a sum of terms from :mod:`featinv.objectives`
    (``features("relu3_3") + 0.5 * tv()``, ``channel("relu4_3", 12)``, ...); it replaces what
    ``layers``, ``tv`` and ``alpha_norm`` would build, and names the layers the run extracts.

    ``quiet`` (default: quiet except in a notebook) hides the progress bar; ``live`` (default: in a
    notebook, unless quiet) shows the image forming (:mod:`featinv.optim.live`).

    With ``out``, the run is written to that folder (config, log, snapshots, final image,
    summary) and can be resumed with ``resume=True``; without it nothing touches the disk.
    Either way ``result.snapshots`` holds the image every ``snapshot_every`` steps of this call
    (a resumed run's earlier ones are in its folder), shown as a strip under the result in a
    notebook; ``result.plot()`` draws the loss curves.

    >>> r = invert("skimage:astronaut", model="resnet18", weights="none", layers="res1", size=32, steps=2)
    >>> r.image.shape, r.status
    (torch.Size([3, 32, 32]), <Status.DONE: 'done'>)
    >>> photo = torch.zeros(3, 40, 40)  # a notebook's tensor: named in the config by size and digest
    >>> invert(photo, model="resnet18", weights="none", layers="res1", size=32, steps=1).config.image
    '<tensor 40x40 #17744bb6>'
    """
    from .optim.recipes import with_recipe

    base = config.to_dict() if config else {}
    if isinstance(model, str):
        options["model"], model = model, None
    elif isinstance(model, torch.nn.Module):
        from .nets.preprocess import PRESETS

        model = LoadedModel(model, PRESETS["imagenet"], module_name(model), "user module", True)
    if isinstance(model, LoadedModel):
        options.setdefault("model", model.name)
    if image is not None:
        options["image"] = image
    if isinstance(param, torch.nn.Module):
        options["param"] = CUSTOM_PARAM
    elif param is not None:
        options["param"], param = param, None
    if objective is not None:
        if not isinstance(objective, Sum):
            from .errors import ConfigError

            raise ConfigError(
                f"objective must be built from featinv.objectives (features, tv, alpha_norm, "
                f"channel, neuron, with + and *), got {type(objective).__name__}"
            )
        if not objective.layers:
            from .errors import ConfigError

            raise ConfigError(f"the objective {objective!r} names no layer: add features(...) or channel(...)")
        options.setdefault("layers", ",".join(objective.layers))
    images: dict[str, torch.Tensor] = {}
    for key in ("image", "init"):  # in-memory images travel beside the config, named in it
        if key in options and in_memory(options[key]):
            name = describe(options[key])
            images[name], options[key] = read_image(options[key]), name
    known = (  # the network, loaded once: for the recipe (if any) and the run
        {(options.get("model", base.get("model")), options.get("weights", base.get("weights"))): model}
        if isinstance(model, LoadedModel)
        else {}
    )
    config, header = with_recipe(base, options, models=known)
    model = known.get((config.model, config.weights), model)
    notebook = in_notebook()
    quiet = not notebook if quiet is None else quiet
    callbacks = [*callbacks, Snapshots()]  # result.snapshots, with or without a run folder
    if live if live is not None else notebook and not quiet:
        from .optim.live import LiveView

        callbacks = [*callbacks, LiveView()]
    if out is None:
        if resume:
            from .errors import RunFolderError

            raise RunFolderError("resume needs the run folder: pass out=...")
        callbacks = list(callbacks) + ([] if quiet else [ProgressBar()])
        return Inversion(config, model, images, param=param, objective=objective).run(callbacks)
    from .runs.runfolder import run_in_folder

    return run_in_folder(
        config,
        Path(out),
        resume=resume,
        model=model,
        images=images,
        callbacks=list(callbacks),
        quiet=quiet,
        header=header,
        param=param,
        objective=objective,
    )


# help(featinv.invert) lists every option, generated from the config so that it cannot drift
invert.__doc__ = f"{invert.__doc__}\n{textwrap.indent(options_docs(), '    ')}\n"


def layers(model: str | LoadedModel = "vgg16_offline", size: int = 128, weights: str | None = "none") -> Any:
    """A network's layers at ``size`` px: alias, node, shape, stride and the defaults a run there
    gets (a table in a notebook; ``print`` gives the ``featinv layers`` listing). ``weights``
    default none: shapes do not depend on them.

    >>> table = layers("resnet18", size=64)
    >>> table.row("res2").stride, table.row("pool1").param
    (4, 'pyramid')
    """
    from .nets.models import load_model
    from .optim.layertable import layer_table

    return layer_table(model if isinstance(model, LoadedModel) else load_model(model, weights), size)


# -- the rest of the workflow from Python: objects that show themselves in a notebook --------------
@dataclass(frozen=True)
class Page:
    """A page featinv wrote (a report, a comparison): ``path``; in a notebook, the page itself
    (its images are inline, so it shows without a server)."""

    path: Path
    height: int = 700  # px of the notebook's frame (the page scrolls inside it)

    def __repr__(self) -> str:
        return f"<Page {self.path}>"

    def _repr_html_(self) -> str:
        import html

        page = html.escape(self.path.read_text(), quote=True)
        return (
            f'<p><a href="{html.escape(self.path.resolve().as_uri())}">{html.escape(str(self.path))}</a></p>'
            f'<iframe srcdoc="{page}" style="width:100%;height:{self.height}px;border:1px solid #ccc"></iframe>'
        )


@dataclass(frozen=True)
class SweepRun:
    """A finished (or interrupted) sweep: its folder and each trial's outcome; a table of the
    trials in a notebook; :meth:`report` writes and shows its page."""

    folder: Path
    outcomes: tuple[Any, ...]

    def __repr__(self) -> str:
        done = sum(o.status == "done" for o in self.outcomes)
        return f"<SweepRun {self.folder}: {done}/{len(self.outcomes)} trials done>"

    def rows(self) -> list[dict[str, Any]]:
        """One dict per trial: name, the parameters that vary, status, PSNR, SSIM, feature error."""
        return [
            {
                "name": o.trial.name,
                **o.trial.params,
                "status": str(o.status),
                "psnr": o.summary.get("psnr"),
                "ssim": o.summary.get("ssim"),
                "feature_error": o.summary.get("feature_error_total"),
            }
            for o in self.outcomes
        ]

    def _repr_html_(self) -> str:
        import html

        rows = self.rows()
        keys = list(dict.fromkeys(k for row in rows for k in row))
        cell = lambda v: f"{v:.4g}" if isinstance(v, float) else "" if v is None else str(v)
        head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(cell(row.get(k)))}</td>" for k in keys) + "</tr>" for row in rows
        )
        return f"<p>{html.escape(repr(self))}</p><table><tr>{head}</tr>{body}</table>"

    def report(self) -> Page:
        return report(self.folder)


def sweep(
    spec: dict[str, Any] | str | Path, out: str | Path, batch: int | None = None, executor: str = "local", jobs: int = 2
) -> SweepRun:
    """Run a sweep (a dict as a sweep file holds it, or the file's path) into ``out``, as
    ``featinv sweep`` does: finished trials are kept, unfinished ones resumed.

    >>> import tempfile
    >>> base = {"model": "resnet18", "weights": "none", "layers": "res1", "size": 16, "steps": 2}
    >>> run = sweep({"base": base, "grid": {"lr": [0.01, 0.1]}}, tempfile.mkdtemp())
    >>> [row["lr"] for row in run.rows()], {row["status"] for row in run.rows()}
    ([0.01, 0.1], {'done'})
    """
    import yaml

    from .runs import sweep as sweeps
    from .runs.executors import make_executor

    out = Path(out)
    if isinstance(spec, dict):
        trials, text = sweeps.expand(spec), yaml.safe_dump(spec, sort_keys=False)
    else:
        trials, text = sweeps.load_sweep(spec), Path(spec).read_text()
    out.mkdir(parents=True, exist_ok=True)
    sweeps.save_spec(out, text)
    outcomes = sweeps.run_sweep(trials, out, batch=batch, executor=make_executor(executor, jobs))
    return SweepRun(out, tuple(outcomes))


def study(out: str | Path, fast: bool = True, **options: Any) -> Page:
    """Run the seed study's four questions into ``out`` (``fast``: 64 px, 60 steps; ``options``
    as :func:`featinv.experiments.study.run_seed_study` takes them: size, steps, model, ...)
    and return its report."""
    from .experiments.study import run_seed_study

    run_seed_study(Path(out), fast=fast, **options)
    return report(out)


def report(folder: str | Path) -> Page:
    """Write the HTML report of a run, sweep or study folder, and return it (shown in a notebook)."""
    from .reports.report import report as write_report

    return Page(write_report(folder))


def compare(runs: Sequence[str | Path], out: str | Path) -> Page:
    """Put run folders side by side (images and numbers) in ``out``, and return the page."""
    from .reports.compare import compare as write_comparison

    return Page(write_comparison([Path(r) for r in runs], Path(out)))
