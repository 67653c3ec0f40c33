"""The command line: a thin layer over the library.

Only argparse is imported at start, so ``featinv --help`` answers at once; torch loads when
work starts. Errors from bad input print one line and exit 2 (traceback with ``--debug``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .status import Status


def _add_config_options(parser: argparse.ArgumentParser, image_flag: bool) -> None:
    """A flag for every config field, its help generated from the config (featinv.options);
    ``image`` is a flag where it is not the command's positional argument."""
    from . import options

    group = parser.add_argument_group("inversion options (override --config)")
    for name in options.NAMES:
        if name == "image" and not image_flag:
            continue
        help_text = options.help_text(name).replace("%", "%%")
        if options.kind(name) is bool:  # absent means "as the config file or the default says"
            action: Any = argparse.BooleanOptionalAction
            group.add_argument(options.flag(name), dest=name, action=action, default=None, help=help_text)
        else:
            group.add_argument(options.flag(name), dest=name, type=options.kind(name), default=None, help=help_text)
    group.add_argument("--config", type=Path, help="YAML file of options; command-line options win")


def _add_debug(command: argparse.ArgumentParser) -> None:
    """``--debug`` after the command too; absent there, it leaves the top-level flag's value
    (a subcommand's own default would overwrite ``featinv --debug COMMAND``)."""
    command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="featinv", description="Reconstruct images from a network's features (Mahendran & Vedaldi 2015)."
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks (here or after the command)")
    parser.add_argument("--version", action="version", version=f"featinv {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    inv = sub.add_parser(
        "invert",
        help="reconstruct an image from its features",
        description="Reconstruct IMAGE (a file or a built-in photo) from a network's features at the given layers.",
    )
    from .options import help_text

    inv.add_argument("image", nargs="?", help=help_text("image") + "; a --config file's image wins over the default")
    _add_config_options(inv, image_flag=False)
    inv.add_argument("--out", type=Path, help="run folder (default: a new folder under runs/)")
    inv.add_argument("--resume", action="store_true", help="continue the run in --out")
    inv.add_argument("--quiet", action="store_true", help="no progress bar, only errors")
    inv.add_argument("--tensorboard", action="store_true", help="also log to RUN/tensorboard")
    _add_debug(inv)

    lay = sub.add_parser(
        "layers", help="list a model's layers: aliases, output shapes, strides and the defaults a run there gets"
    )
    lay.add_argument("model", nargs="?", default="vgg16_offline")
    lay.add_argument("--weights", default="none", help="weights to load (default none: shapes do not depend on them)")
    lay.add_argument(
        "--size",
        type=int,
        default=None,
        help="input size for the shapes, strides and defaults (default 128, as invert's; 224 for a network "
        "that takes only that)",
    )
    lay.add_argument("--all", action="store_true", help="also list every graph node, not only aliases")
    lay.add_argument("--plot", type=Path, help="also draw the structure to this PNG file")
    lay.add_argument("--highlight", default="", help="comma-separated layers to highlight in --plot")
    _add_debug(lay)

    sw = sub.add_parser(
        "sweep",
        help="run a grid of inversions from a sweep file",
        description="Run every trial of SWEEP.yaml (base + grid + zip) into its own "
        "run folder; re-running skips finished trials.",
    )
    sw.add_argument("sweep", type=Path, help="sweep YAML file (see examples/sweep-small.yaml)")
    _add_config_options(sw, image_flag=True)
    sw.add_argument("--out", type=Path, help="sweep folder (default: runs/<sweep file name>)")
    sw.add_argument("--dry-run", action="store_true", help="list the trials and exit")
    sw.add_argument(
        "--batch",
        type=int,
        default=None,
        help="trials per forward pass (default: up to 8 on CPU, 32 on GPU, fewer above 256 px, "
        "spread over the executor's workers)",
    )
    sw.add_argument("--quiet", action="store_true", help="print only the summary")
    sw.add_argument("--tensorboard", action="store_true", help="also log each trial to TRIAL/tensorboard")
    sw.add_argument(
        "--executor",
        default="local",
        choices=["local", "processes", "ray"],
        help="where batches run: this process (default), a local process pool, or Ray",
    )
    sw.add_argument("-j", "--jobs", type=int, default=2, help="worker processes for --executor processes")
    sw.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    sw.add_argument("--gpus", type=float, default=0, help="GPUs per Ray task (default 0)")
    _add_debug(sw)

    st = sub.add_parser(
        "study",
        help="run a built-in study and write its report",
        description="`featinv study seed` reproduces the seed study's four questions "
        "(learning rate, TV weight, layer depth, models) and writes a report.",
    )
    st.add_argument("name", choices=["seed"], help="the study to run")
    st.add_argument("--out", type=Path, help="study folder (default: runs/study-seed, or -fast)")
    st.add_argument(
        "--fast", action="store_true", help="small images and few steps (64 px, 60): a minute on a laptop CPU"
    )
    st.add_argument("--size", type=int, help="image side in pixels (default 128, or 64 with --fast)")
    st.add_argument("--steps", type=int, help="steps per trial (default 200, or 60 with --fast)")
    st.add_argument("--model", help="network for Q1-Q3 (default: the offline ImageNet VGG16)")
    st.add_argument("--weights", help="weights for --model and the torchvision networks of Q4 (e.g. DEFAULT)")
    st.add_argument("--image", default="skimage:chelsea", help="target image (default skimage:chelsea)")
    st.add_argument("--batch", type=int, default=None, help="trials per forward pass (default: automatic)")
    st.add_argument("--quiet", action="store_true", help="print only where the report is")
    _add_debug(st)

    rep = sub.add_parser("report", help="write report.html and report.md for a run, sweep or study folder")
    rep.add_argument("folder", type=Path)
    rep.add_argument(
        "--screenshot",
        action="store_true",
        help="also save report.png, rendered by a headless Chromium (must be installed)",
    )
    _add_debug(rep)

    be = sub.add_parser(
        "bench",
        help="time featinv's step against the floor and a naive peer",
        description="Median seconds per step of featinv, the bare truncated forward+backward "
        "(floor) and a naive whole-network implementation, in one process; "
        "plus 8 batched trials against 8 sequential ones. Prints a table, "
        "optionally writes JSON.",
    )
    be.add_argument(
        "--cases",
        nargs="+",
        default=None,
        help="MODEL:LAYER,LAYER ... (default: vgg16_bn:conv1_2,conv3_1,pool5 resnet18:res2,res8)",
    )
    be.add_argument("--sizes", nargs="+", type=int, default=[128, 224])
    be.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    be.add_argument(
        "--batched-cases",
        nargs="+",
        metavar="MODEL:LAYER",
        help="cases for the 8-batched-vs-8-sequential rows (default: vgg16_bn:conv3_1 resnet18:res2)",
    )
    be.add_argument(
        "--batched-sizes",
        nargs="*",
        type=int,
        default=[64, 128, 224],
        help="sizes for the batched-vs-sequential rows; none to skip",
    )
    be.add_argument("--steps", type=int, default=10, help="timed steps per measurement (median)")
    be.add_argument("--warmup", type=int, default=3)
    be.add_argument("--no-naive", action="store_true", help="skip the naive baseline")
    be.add_argument("--device", default="auto")
    be.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "bf16", "fp16"],
        help="autocast for featinv's step (the floor and naive rows stay fp32)",
    )
    be.add_argument(
        "--compile",
        metavar="MODE",
        default=None,
        help="torch.compile featinv's step (default | reduce-overhead | max-autotune); the compile time is reported",
    )
    be.add_argument("--json", type=Path, help="write the results here")
    q = be.add_argument_group("quality benchmark (--quality): PSNR/SSIM/feature error of every method on photos")
    q.add_argument(
        "--quality", action="store_true", help="run the quality benchmark instead of the speed one (see QUALITY.md)"
    )
    q.add_argument(
        "--photos",
        nargs="+",
        default=None,
        help="photos: names of built-in photos (skimage, matplotlib, sklearn) or files (default: six the defaults were "
        "chosen on and four held out: featinv.experiments.quality.PHOTOS)",
    )
    q.add_argument(
        "--quality-cases",
        nargs="+",
        default=None,
        metavar="MODEL:LAYER",
        help="default: VGG16 conv1_2 relu3_3 relu4_3 pool5, EfficientNet-Lite0 stage2 stage5",
    )
    q.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="default, pixel, fourier, pyramid, dip, mahendran2016, mahendran2015, peer, flat",
    )
    q.add_argument("--quality-size", type=int, default=128)
    q.add_argument("--quality-steps", type=int, default=200)
    q.add_argument("--no-equal-time", action="store_true", help="skip the equal-wall-time rows")
    q.add_argument(
        "--out",
        type=Path,
        default=Path("runs/quality"),
        help="folder for quality.json, quality.md and the grids (default runs/quality)",
    )
    _add_debug(be)

    co = sub.add_parser(
        "compare",
        help="put run folders (or a sweep's trials) side by side: images, differences, numbers, which keeps more",
    )
    co.add_argument("runs", nargs="+", type=Path, help="run folders, or sweep folders (their trials)")
    co.add_argument(
        "--out",
        type=Path,
        default=Path("runs/compare"),
        help="folder for report.html, report.md and compare.png (default runs/compare)",
    )
    _add_debug(co)
    se = sub.add_parser(
        "serve",
        help="the live explorer in the browser: start runs, watch them form, browse runs and reports",
        description="A local web app (http://127.0.0.1:8765/ by default) for the whole workflow; its runs are "
        "normal run folders under --runs. Ctrl-C stops it and leaves every run folder resumable.",
    )
    se.add_argument("--runs", type=Path, default=Path("runs"), help="the folder runs are written to and browsed in")
    se.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    se.add_argument("--port", type=int, default=8765, help="port (0: any free one; the address is printed)")
    se.add_argument("--queue", type=int, default=8, help="runs that may wait for the one running (default 8)")
    se.add_argument("--max-size", type=int, default=1024, help="the largest size a run may ask for (px)")
    se.add_argument("--max-steps", type=int, default=20000, help="the most steps a run may ask for")
    _add_debug(se)
    mo = sub.add_parser("models", help="list the available models (the offline ones first, then torchvision's)")
    mo.add_argument(
        "--timm",
        metavar="PATTERN",
        nargs="?",
        const="*",
        default=None,
        help="list timm's models instead, matching PATTERN (wildcards as timm.list_models, "
        "e.g. 'vit_*'); use them as --model timm:NAME",
    )
    _add_debug(mo)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def _explicit(args: argparse.Namespace) -> dict[str, Any]:
    """The config values given as options (and the image argument)."""
    from .options import NAMES

    return {k: getattr(args, k) for k in NAMES if getattr(args, k, None) is not None}


def _config_from_args(args: argparse.Namespace, under: dict[str, Any], models: dict) -> tuple[Any, str]:
    """The config of ``under`` < the --config file < the options, with its recipe applied, and
    the recipe's YAML header; a network the recipe loads is left in ``models`` for the run."""
    from .config import read_yaml
    from .optim.recipes import with_recipe

    given_file = read_yaml(args.config) if args.config else {}
    where = str(args.config) if args.config else "options"
    return with_recipe({**under, **given_file}, _explicit(args), where, models=models)


def _default_out(config: Any) -> Path:
    from .files import safe_name, sample_name
    from .nets.models import DEFAULT_LAYERS
    from .runs.runfolder import new_folder_name

    image = sample_name(config.image) or Path(config.image).stem
    model = Path(config.model).stem
    layers = (
        "+".join(layer.split(":")[0] for layer in config.layers)
        if config.layers
        else DEFAULT_LAYERS.get(config.model, "default")
    )
    return new_folder_name(Path("runs"), safe_name(f"{image}_{model}_{layers}", limit=100))


def cmd_invert(args: argparse.Namespace) -> int:
    from .runs.runfolder import CONFIG, run_in_folder, stored_config

    models: dict = {}  # a recipe's network: loaded once, for the recipe and the run
    if args.resume:
        if args.out is None:
            raise _usage("--resume needs --out RUN_FOLDER (the run to continue)")
        if not (args.out / CONFIG).is_file():
            from .errors import RunFolderError

            raise RunFolderError(f"nothing to resume in {str(args.out)!r}: expected a run folder with {CONFIG}")
        # the file's values, then the options, over the stored run: any difference is refused below
        config, header = _config_from_args(args, stored_config(args.out).to_dict(), models)
        out = args.out
    else:
        config, header = _config_from_args(args, {}, models)
        out = args.out or _default_out(config)
    result = run_in_folder(
        config,
        out,
        resume=args.resume,
        quiet=args.quiet,
        header=header,
        model=models.get((config.model, config.weights)),
        tensorboard=args.tensorboard,
    )
    s = result.summary
    if not args.quiet or result.status != Status.DONE:
        errors = ", ".join(f"{k} {v:.4f}" for k, v in s["feature_error"].items())
        print(
            f"{result.status}: {s['steps']} steps, PSNR {s['psnr']:.2f} dB, SSIM {s['ssim']:.3f}, "
            f"feature error {errors}, {s['seconds_per_step'] * 1000:.0f} ms/step "
            f"[{s['model']}]"
        )
        if not config.layers:
            print(f"layer: {', '.join(s['feature_error'])}, the model's default (--layers picks another)")
        if "judge" in s:
            print(_verdict_line(s["judge"]))
        print(f"run folder: {out}")
    if result.status == Status.INTERRUPTED:
        code = _exit_interrupted()
        print(f"interrupted: resume with `featinv invert --resume --out {out}`", file=sys.stderr)
        return code
    if result.status == Status.DIVERGED:
        print(f"diverged: {s.get('message', '')}", file=sys.stderr)
        return 3
    return 0


def cmd_layers(args: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .nets.models import load_model
    from .optim.layertable import layer_table

    model = load_model(args.model, args.weights)
    try:
        listing = str(layer_table(model, args.size or 128, everything=args.all))
    except ConfigError as exc:
        if args.size is not None:
            raise
        header, _, rows = str(layer_table(model, 224, everything=args.all)).partition("\n")
        listing = f"{header} (at 224 px: {exc})\n{rows}"  # a fixed-size network (ViT): ImageNet's size
    print(listing)
    if args.plot:
        from .files import write_bytes
        from .reports.structure import structure_png

        highlight = [h for h in args.highlight.split(",") if h]
        write_bytes(args.plot, structure_png(model.module, model.label, args.size, highlight))
        print(f"structure drawn to {args.plot}")
    return 0


def _verdict_line(v: dict) -> str:
    """``--judge``'s verdict in one line."""
    kept = (
        ""
        if v.get("class_agreement") is None
        else f", {v['original_class']!r} {'kept' if v['class_agreement'] else 'not'} in its top 5"
        + ("" if v["confident"] else " (the judge is unsure of the photo itself)")
    )
    return f"judge ({v['judge']}): own photo ranked {v['rank']} of {v['gallery']}{kept}, cosine {v['cosine']:.2f}"


def cmd_sweep(args: argparse.Namespace) -> int:
    from .runs import sweep

    overrides = _explicit(args)
    if args.config:
        raise _usage("sweep takes no --config: put shared options in the sweep file's base")
    trials = sweep.load_sweep(args.sweep, overrides)
    out = args.out or Path("runs") / args.sweep.stem
    if args.dry_run:
        for t in trials:
            print(f"{t.name}  " + " ".join(f"{k}={v}" for k, v in t.params.items()))
        print(f"{len(trials)} trials -> {out}/trials/")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    sweep.save_spec(out, args.sweep.read_text())

    from .runs.executors import make_executor

    executor = make_executor(args.executor, args.jobs, args.address, args.tensorboard, args.gpus)
    progress = _SweepProgress(len(trials), _trial_printer(args.quiet))
    try:
        outcomes = sweep.run_sweep(
            trials, out, on_trial=progress, batch=args.batch, tensorboard=args.tensorboard, executor=executor
        )
    finally:
        progress.close()
    failed = sum(o.status == Status.FAILED for o in outcomes)
    left = sum(o.status == Status.INTERRUPTED for o in outcomes)
    finished = len(outcomes) - failed - left
    print(f"{finished}/{len(outcomes)} trials finished, {failed} failed; table: {out / 'trials.csv'}")
    if left:
        code = _exit_interrupted()
        print(f"interrupted: {left} trial(s) to run or resume: re-run the same command to continue", file=sys.stderr)
        return code
    return 4 if failed else 0  # 1 is kept for featinv's own bugs


def _trial_printer(quiet: bool) -> Any:
    def report(o: Any) -> None:
        if not quiet:
            s = o.summary
            metrics = f"PSNR {s['psnr']:.2f} dB, {s['seconds_per_step'] * 1000:.0f} ms/step" if s else ""
            print(f"[{o.status}{' earlier' if o.reused else ''}] {o.trial.name}  {metrics}{o.error}", flush=True)

    return report


class _SweepProgress:
    """One bar for the whole sweep (done / failed / left), on a terminal only."""

    def __init__(self, total: int, then: Any) -> None:
        self.total, self.then, self.done, self.failed, self.bar = total, then, 0, 0, None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="sweep", unit="trial", dynamic_ncols=True)

    def __call__(self, outcome: Any) -> None:
        self.done += outcome.status != Status.FAILED
        self.failed += outcome.status == Status.FAILED
        if self.bar is not None:
            self.bar.set_postfix(
                done=self.done, failed=self.failed, left=self.total - self.done - self.failed, refresh=False
            )
            self.bar.update(1)
            self.bar.clear()
        self.then(outcome)
        if self.bar is not None:
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_study(args: argparse.Namespace) -> int:
    from .experiments.study import run_seed_study
    from .reports.report import report

    out = args.out or Path("runs") / ("study-seed-fast" if args.fast else "study-seed")
    run_seed_study(
        out,
        fast=args.fast,
        model=args.model,
        weights=args.weights,
        image=args.image,
        on_trial=_trial_printer(args.quiet),
        batch=args.batch,
        size=args.size,
        steps=args.steps,
    )
    path = report(out)
    print(f"report: {path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .reports.report import report, screenshot

    path = report(args.folder)
    print(f"report: {path}")
    if args.screenshot:
        print(f"screenshot: {screenshot(path)}")
    return 0


def _finished_quality_rows(out: Path, size: int, steps: int, photos: list[str]) -> list:
    """The rows of an earlier quality run in ``out`` (resumed case by case), or none if there is none.
    A run at other settings is refused rather than overwritten."""
    from .errors import ConfigError
    from .experiments import quality

    path = out / "quality.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    rows = quality.from_json(data.get("rows", []))
    earlier = {"size": data.get("size"), "steps": data.get("steps"), "photos": sorted({r.photo for r in rows})}
    asked = {"size": size, "steps": steps, "photos": sorted(photos)}
    if rows and earlier != asked:
        raise ConfigError(
            f"{path} holds a quality run at {earlier}, not {asked}: "
            "resume it with the same settings or choose another --out"
        )
    if rows:
        print(f"resuming {path}: {len({(r.model, r.layer) for r in rows})} case(s) kept")
    return rows


def cmd_quality(args: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .experiments import quality
    from .files import write_json, write_text

    methods = args.methods or list(quality.METHODS)
    unknown = [m for m in methods if m not in quality.METHODS]
    if unknown:
        raise ConfigError(f"unknown method {unknown[0]!r}: expected some of {', '.join(quality.METHODS)}")
    from .experiments.bench import environment
    from .optim.problem import resolve_device

    env = environment(resolve_device("auto"))
    photos = list(args.photos or quality.PHOTOS)
    finished = _finished_quality_rows(args.out, args.quality_size, args.quality_steps, photos)

    def write(rows: list) -> None:  # after every case: a long run keeps what it measured
        write_json(
            args.out / "quality.json",
            {"environment": env, "size": args.quality_size, "steps": args.quality_steps, "rows": quality.to_json(rows)},
        )
        write_text(args.out / "quality.md", quality.table(rows) + "\n")

    args.out.mkdir(parents=True, exist_ok=True)
    rows = quality.run_benchmark(
        photos,
        args.quality_cases or quality.CASES,
        methods,
        args.quality_size,
        args.quality_steps,
        not args.no_equal_time,
        args.out,
        on_case=write,
        finished=finished,
    )
    write(rows)
    print(f"\n# {env}\n" + quality.table(rows))
    print(f"wrote {args.out / 'quality.json'}, quality.md and the grids")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.quality:
        return cmd_quality(args)
    from .experiments import bench
    from .files import write_json
    from .optim.problem import resolve_device

    device = resolve_device(args.device)
    cases = bench.parse_cases(args.cases or bench.DEFAULT_CASES, args.sizes, args.batches)
    rows, batched = [], []
    for case in cases:
        rows.append(
            bench.measure(
                case,
                device,
                args.steps,
                args.warmup,
                naive=not args.no_naive,
                precision=args.precision,
                compile_mode=args.compile,
            )
        )
        print(bench.table(rows[-1:], []).splitlines()[-1], flush=True)
    for case in bench.parse_cases(args.batched_cases or bench.DEFAULT_BATCHED_CASES, args.batched_sizes, [8]):
        batched.append(
            bench.measure_batched(case.model, case.layer, case.size, device, case.batch, args.steps, args.warmup)
        )
        print(bench.table([], batched[-1:]).splitlines()[-1], flush=True)
    env = bench.environment(device)
    print(f"\n# {env}\n" + bench.table(rows, batched))
    if args.json:
        write_json(args.json, {"environment": env, "steps": rows, "batched": batched})
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .reports.compare import compare

    path = compare(args.runs, args.out)
    print(f"comparison: {path} and {args.out / 'compare.png'}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from importlib.util import find_spec

    from .errors import FeatinvError
    from .install import install_hint

    missing = [p for p, module in SERVE_PACKAGES.items() if find_spec(module) is None]
    if missing:
        raise FeatinvError(f"featinv serve needs {', '.join(missing)}: {'; '.join(map(install_hint, missing))}")
    if args.queue < 1:
        raise _usage(f"--queue must be at least 1, got {args.queue}")
    from .serve import serve

    try:
        serve(args.runs, args.host, args.port, args.queue, args.max_size, args.max_steps)
    except OSError as exc:  # the port is taken, the address is not this machine's
        raise FeatinvError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    except KeyboardInterrupt:  # uvicorn hands Ctrl-C back once it has shut down
        pass
    print(f"featinv explorer stopped: every run folder under {args.runs} is resumable", file=sys.stderr)
    return 0


# the serve extra's packages, by the module each is imported as
SERVE_PACKAGES = {
    "starlette": "starlette",
    "uvicorn": "uvicorn",
    "sse-starlette": "sse_starlette",
    "python-multipart": "python_multipart",
}


def cmd_models(args: argparse.Namespace) -> int:
    from .nets.models import OFFLINE_MODELS, available_models

    if args.timm is not None:
        from .nets.models import timm_names

        names = timm_names(args.timm)
        if not names:
            from .errors import ModelError

            raise ModelError(f"no timm model matches {args.timm!r}: expected a pattern like 'resnet*' or 'vit_*'")
        print("\n".join(names))
        return 0
    from .nets.models import weights_cached

    for name in available_models():
        if name in OFFLINE_MODELS:
            note = "offline ImageNet weights"
        else:
            cached = weights_cached(name)
            note = (
                "no published weights: --weights none"
                if cached is None
                else "ImageNet weights cached"
                if cached
                else "ImageNet weights need a download (--weights none runs offline)"
            )
        print(f"{name}  ({note})")
    return 0


class _UsageError(Exception):
    pass


def _usage(message: str) -> _UsageError:
    return _UsageError(message)


def _exit_interrupted() -> int:
    """Exit code 130 for a Ctrl-C, and no more Ctrl-Cs while the process exits: one landing during
    the interpreter's shutdown would otherwise end it by SIGINT (returncode -2, not 130). The CLI
    owns its process; the library never does this."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():  # only there can signals be set
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A KeyboardInterrupt raised in code Python ran from a string (a dataclass or namedtuple built
    # during a lazy import) is remembered as unhandled even once caught, and under `python -m`
    # CPython then ends the process by SIGINT instead of 130; running any string forgets it.
    exec("None")
    return 130


def _format_own_warnings() -> None:
    """featinv's own warnings read ``featinv: warning: ...``; a third party's keep Python's format
    (file, line, category), so nobody mistakes torch's deprecation notice for featinv's; one
    known third-party notice is silenced. The CLI owns its process; the library never changes the
    warning format or filters."""
    import warnings

    from .errors import FeatinvWarning

    standard = warnings.formatwarning

    def format_warning(
        message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
    ) -> str:
        if issubclass(category, FeatinvWarning):
            return f"featinv: warning: {message}\n"
        return standard(message, category, filename, lineno, line)

    warnings.formatwarning = format_warning
    # onnx2torch's Slice indexes with a list, which torch warns about on every ONNX run with a
    # Slice node (tf2onnx exports have them); it works, and the user can do nothing about it
    warnings.filterwarnings("ignore", message="Using a non-tuple sequence for multidimensional", module="onnx2torch")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    _format_own_warnings()
    handlers = {
        "invert": cmd_invert,
        "layers": cmd_layers,
        "sweep": cmd_sweep,
        "study": cmd_study,
        "report": cmd_report,
        "bench": cmd_bench,
        "models": cmd_models,
        "compare": cmd_compare,
        "serve": cmd_serve,
    }
    if args.command in ("invert", "sweep", "study", "bench"):
        from .nets.perf import tune_process

        tune_process()  # the CLI's own process: see featinv.nets.perf
    from .optim.interrupts import stop_on_signals

    try:
        with stop_on_signals():  # Ctrl-C finishes the step and leaves the run resumable
            return handlers[args.command](args)
    except BrokenPipeError:  # `featinv layers | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        code = _exit_interrupted()
        print("featinv: interrupted", file=sys.stderr)
        return code
    except _UsageError as exc:
        parser.error(str(exc))
    except Exception as exc:
        from .errors import FeatinvError

        if args.debug:
            raise
        if not isinstance(exc, FeatinvError):  # featinv's own bug: one line, the traceback under --debug
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            print(
                f"featinv: internal error: {type(exc).__name__}: {first} (a bug in featinv: "
                f"rerun with --debug for the traceback and report it)",
                file=sys.stderr,
            )
            return 1
        print(f"featinv: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
