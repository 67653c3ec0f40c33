"""The pages of a report: blocks (text, tables, figures, code) in sections, the run and sweep pages,
and their rendering to ``report.html`` (self-contained) and ``report.md``.

A report is a list of :class:`Section` objects holding blocks (text, tables, figures, code),
rendered twice from the same structure: HTML with every image embedded (opens with no
network) and Markdown whose images live in ``report_files/``. Figures are drawn with
matplotlib; findings are sentences written from the measured numbers.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import files
from ..runs.layout import CONFIG, DIVERSITY, FINAL, SUMMARY, SWEEP_SPEC, TARGET, TRIALS_CSV, WINDOW, read_log
from ..status import HAS_IMAGE, Status

REPORT_FILES = "report_files"


# -- reading folders ---------------------------------------------------------------------
@dataclass
class RunRecord:
    """What a report needs from one run folder."""

    folder: Path
    name: str
    config: dict[str, Any]
    summary: dict[str, Any]
    history: list[dict[str, float]]

    @property
    def snapshots(self) -> list[Path]:
        return sorted((self.folder / "snapshots").glob("step_*.png"))

    @property
    def ok(self) -> bool:
        return self.summary.get("status") in HAS_IMAGE and (self.folder / FINAL).is_file()


def read_run(folder: Path, name: str | None = None) -> RunRecord:
    import yaml

    folder = Path(folder)
    config = yaml.safe_load((folder / CONFIG).read_text()) if (folder / CONFIG).is_file() else {}
    summary = json.loads((folder / SUMMARY).read_text()) if (folder / SUMMARY).is_file() else {}
    history = read_log(folder)
    return RunRecord(folder, name or folder.name, config or {}, summary, history)


def read_trials(folder: Path) -> tuple[list[dict[str, str]], list[RunRecord]]:
    """A sweep folder's trials.csv rows and the run records of its trials (in csv order)."""
    with open(Path(folder) / TRIALS_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    runs = [
        read_run(Path(folder) / "trials" / r["name"])
        for r in rows
        if (Path(folder) / "trials" / r["name"] / CONFIG).is_file()
    ]
    return rows, runs


# -- the document model --------------------------------------------------------------------
@dataclass
class Figure:
    png: bytes
    caption: str
    name: str


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Any]]


@dataclass
class Section:
    title: str
    blocks: list[Any] = field(default_factory=list)  # str (paragraph) | Table | Figure | ("code", text)
    level: int = 2


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value)
    return str(value)


# -- figures ---------------------------------------------------------------------------
def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _figure(**kwargs: Any) -> Any:
    """A matplotlib figure outside pyplot: no backend to switch, no global figure list to close."""
    from matplotlib.figure import Figure as MplFigure

    return MplFigure(**kwargs)


def feature_loss(row: dict[str, float]) -> float:
    """The normalised feature loss of a log row: the sum of its feat_* columns."""
    return sum(v for k, v in row.items() if k.startswith("feat_"))


def curves_figure(runs: list[RunRecord], title: str, name: str, labels: list[str] | None = None) -> Figure:
    """Normalised feature loss against step (log scale), one line per run."""
    fig = _figure(figsize=(7, 4))
    ax = fig.subplots()
    for run, label in zip(runs, labels or [r.name for r in runs]):
        if run.history:
            ax.plot([r["step"] for r in run.history], [max(feature_loss(r), 1e-8) for r in run.history], label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("normalised feature loss")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if len(runs) <= 12:
        ax.legend(fontsize=7)
    return Figure(_png(fig), f"{title}: normalised feature loss ||Φ(x)−Φ0||²/||Φ0||² per step (log scale).", name)


def grid_figure(images: list[Path], captions: list[str], title: str, name: str, columns: int = 5) -> Figure:
    """Images side by side, each with its caption under it."""
    from PIL import Image

    n = len(images)
    columns = max(1, min(columns, n))
    rows = math.ceil(n / columns)
    fig = _figure(figsize=(2.4 * columns, 2.9 * rows), layout="constrained")  # room for the title and captions
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, path, caption in zip(axes.flat, images, captions):
        with Image.open(path) as img:
            ax.imshow(img.convert("RGB"))
        ax.set_title(caption, fontsize=7)
    fig.suptitle(title, fontsize=10)
    return Figure(_png(fig), title, name)


CAPTION_WIDTH = 34  # characters that fit under one image of a grid (fontsize 7, 2.4 inches: about 44)


def strip_figure(images: list[Path], captions: list[str], title: str, name: str) -> Figure:
    """Wide images (a row of tiles each) one under the other, each with its caption above it."""
    from PIL import Image

    fig = _figure(figsize=(10, 1.9 * len(images) + 0.4), layout="constrained")
    axes = fig.subplots(len(images), 1, squeeze=False)
    for ax, path, caption in zip(axes.flat, images, captions):
        with Image.open(path) as img:
            ax.imshow(img.convert("RGB"))
        ax.set_title(caption, fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    return Figure(_png(fig), title, name)


def run_caption(run: RunRecord, keys: list[str]) -> str:
    """What differs between the runs of a grid, one key a line (a model by its short name, unset
    keys left out), then the numbers; lines wrapped to fit under the image.

    >>> r = RunRecord(Path("t"), "t", {"model": "/m/resnet18.onnx", "weights": None, "tv": 0.5},
    ...               {"psnr": 20.04, "ssim": 0.5}, [])
    >>> print(run_caption(r, ["model", "weights", "tv"]))
    model=resnet18
    tv=0.5
    PSNR 20.0 dB, SSIM 0.50
    """
    import textwrap

    s = run.summary
    lines = []
    for k in keys:
        value = run.config.get(k)
        if value is None:
            continue
        if k == "model":
            value = Path(str(value)).stem
        lines += textwrap.wrap(f"{k}={fmt(value)}", CAPTION_WIDTH, subsequent_indent="  ")
    lines.append(f"PSNR {s.get('psnr', math.nan):.1f} dB, SSIM {s.get('ssim', math.nan):.2f}")
    if s.get("pretrained") is False:
        lines.append("(random init)")
    return "\n".join(lines)


# -- sections --------------------------------------------------------------------------
SUMMARY_KEYS = ("status", "steps", "psnr", "ssim", "feature_error_total", "seconds_per_step", "model")


def run_sections(run: RunRecord, prefix: str = "run") -> list[Section]:
    s = run.summary
    blocks: list[Any] = [
        Table(
            ["metric", "value"],
            [[k, fmt(s.get(k, ""))] for k in SUMMARY_KEYS]
            + [[f"feature error {k}", fmt(v)] for k, v in s.get("feature_error", {}).items()],
        )
    ]
    blocks.append(
        grid_figure(
            [run.folder / TARGET, run.folder / FINAL],
            ["target", f"result ({s.get('status', '?')})"],
            f"{run.name}: target and result",
            f"{prefix}_result",
        )
    )
    blocks.append(curves_figure([run], "Loss", f"{prefix}_curve"))
    blocks += analysis_blocks(run, prefix)
    snaps = run.snapshots
    if snaps:
        pick = snaps if len(snaps) <= 10 else [snaps[round(i * (len(snaps) - 1) / 9)] for i in range(10)]
        blocks.append(
            grid_figure(
                pick,
                [p.stem.replace("step_", "step ").lstrip("0") for p in pick],
                "Snapshot progression",
                f"{prefix}_snapshots",
            )
        )
    blocks.append(run_findings(run))
    blocks.append(("code", (run.folder / CONFIG).read_text() if (run.folder / CONFIG).is_file() else ""))
    return [Section(f"Run {run.name}", blocks)]


def _png_file(path: Path) -> bytes:
    return Path(path).read_bytes()


def analysis_blocks(run: RunRecord, prefix: str = "run") -> list[Any]:
    """What a run with --diversity, --window or --channels has beyond its image (see featinv.optim.masks,
    featinv.optim.diversity, featinv.nets.receptive)."""
    s, blocks = run.summary, list[Any]()
    spread = s.get("diversity")
    if spread and (run.folder / DIVERSITY).is_file():
        seeds = ", ".join(str(r["seed"]) for r in s.get("restarts", []))
        blocks.append(
            Figure(
                _png_file(run.folder / DIVERSITY),
                f"Diversity: the restarts (seeds {seeds}), their mean and the per-pixel standard "
                f"deviation (black: every restart agrees; bright: the layer leaves it open). Mean "
                f"std {spread['pixel_std_mean']:.3f}, mean pairwise RMSE "
                f"{spread['mean_pairwise_rmse']:.3f}.",
                f"{prefix}_diversity",
            )
        )
    window = s.get("window")
    if window and (run.folder / WINDOW).is_file():
        top, left, bottom, right = window["pixels"]
        blocks.append(
            Figure(
                _png_file(run.folder / WINDOW),
                f"Window {window['cells']} of {window['layer']}: its cells see pixels {top}-{bottom} "
                f"(rows) x {left}-{right} (columns); one cell's receptive field is "
                f"{window['receptive_field_px']:g} px, cells are {window['cell_stride_px']:g} px apart.",
                f"{prefix}_window",
            )
        )
    if s.get("channels"):
        blocks.append(
            f"Only channels {s['channels']} of the layers were inverted (--channels); the feature "
            f"error is measured on them."
        )
    return blocks


def run_findings(run: RunRecord) -> str:
    s, h = run.summary, run.history
    if not h:
        return "The run logged no steps."
    first, last = feature_loss(h[0]), feature_loss(h[-1])
    text = (
        f"Over {len(h)} steps the normalised feature loss fell from {first:.3g} to {last:.3g} "
        f"({first / max(last, 1e-12):.0f}× lower); the result is {s.get('psnr', math.nan):.1f} dB PSNR "
        f"and {s.get('ssim', math.nan):.2f} SSIM against the target, at "
        f"{s.get('seconds_per_step', math.nan) * 1000:.0f} ms per step."
    )
    if s.get("status") != Status.DONE:
        text += f" Status: {s.get('status')}. {s.get('message', '')}"
    return text


def varying_keys(runs: list[RunRecord]) -> list[str]:
    """Config keys whose value differs between the runs (what the sweep varied)."""
    keys = []
    for key in runs[0].config if runs else {}:
        if len({json.dumps(r.config.get(key), sort_keys=True) for r in runs}) > 1:
            keys.append(key)
    return keys


def sweep_table(rows: list[dict[str, str]]) -> Table:
    headers = [h for h in rows[0] if h != "error"] if rows else []
    body = [[_num(r[h]) for h in headers] for r in rows]
    if any(r.get("error") for r in rows):
        headers.append("error")
        for b, r in zip(body, rows):
            b.append(r.get("error", "")[:160])
    return Table(headers, body)


def _num(text: str) -> Any:
    try:
        return fmt(float(text)) if text not in ("", None) and not text.isalpha() else text
    except ValueError:
        return text


def sweep_findings(runs: list[RunRecord], rows: list[dict[str, str]]) -> str:
    finished = [r for r in runs if r.ok and r.summary.get("status") == Status.DONE]
    failed = [r for r in rows if r["status"] == Status.FAILED]
    if not finished:
        return f"No trial finished ({len(failed)} failed)."
    best = max(finished, key=lambda r: r.summary["psnr"])
    worst = min(finished, key=lambda r: r.summary["psnr"])
    closest = min(finished, key=lambda r: r.summary["feature_error_total"])
    fast = min(finished, key=lambda r: r.summary["seconds_per_step"])
    slow = max(finished, key=lambda r: r.summary["seconds_per_step"])
    text = (
        f"{len(finished)} of {len(rows)} trials finished. Best PSNR: {best.name} "
        f"({best.summary['psnr']:.1f} dB, SSIM {best.summary['ssim']:.2f}); worst: {worst.name} "
        f"({worst.summary['psnr']:.1f} dB). Lowest normalised feature error: {closest.name} "
        f"({closest.summary['feature_error_total']:.3g})."
    )
    lo, hi = fast.summary["seconds_per_step"], slow.summary["seconds_per_step"]
    batch = max(r.summary.get("batch_size", 1) for r in finished)
    if hi <= 1.1 * lo:
        text += f" Every trial ran at about {lo * 1000:.0f} ms/step" + (
            f" (its share of batches of up to {batch} trials)." if batch > 1 else "."
        )
    else:
        text += f" Speed ranged from {lo * 1000:.0f} ms/step ({fast.name}) to {hi * 1000:.0f} ms/step ({slow.name})."
    if failed:
        text += f" {len(failed)} failed: " + "; ".join(f"{r['name']} ({r['error'][:80]})" for r in failed) + "."
    diverged = [r.name for r in runs if r.summary.get("status") == Status.DIVERGED]
    if diverged:
        text += f" Diverged (learning rate too high): {', '.join(diverged)}."
    return text


def sweep_sections(
    folder: Path,
    title: str,
    prefix: str = "sweep",
    intro: str = "",
    trials: tuple[list[dict[str, str]], list[RunRecord]] | None = None,
) -> list[Section]:
    """The section of a sweep folder; ``trials`` (from :func:`read_trials`) if already read."""
    rows, runs = trials or read_trials(folder)
    keys = varying_keys(runs)
    shown = [r for r in runs if r.ok]
    blocks: list[Any] = [intro] if intro else []
    blocks.append(sweep_findings(runs, rows))
    if shown:
        blocks.append(
            curves_figure(
                shown,
                "Convergence",
                f"{prefix}_curves",
                labels=[", ".join(f"{k}={fmt(r.config.get(k))}" for k in keys) or r.name for r in shown],
            )
        )
        blocks.append(
            grid_figure(
                [r.folder / FINAL for r in shown],
                [run_caption(r, keys) for r in shown],
                "Reconstructions",
                f"{prefix}_grid",
            )
        )
    blocks.append(sweep_table(rows) if rows else "No trials.")
    if (folder / SWEEP_SPEC).is_file():
        blocks.append(("code", (folder / SWEEP_SPEC).read_text()))
    return [Section(title, blocks)]


# -- rendering ---------------------------------------------------------------------------
CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px;max-width:100%}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}td{white-space:nowrap}
td:first-child{white-space:normal;overflow-wrap:anywhere;min-width:14em}
th{background:#f3f3f3}figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}figcaption{font-size:13px;color:#555}
pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:12px}section{border-top:2px solid #eee;margin-top:2em}"""

# Marks the page once it has loaded: how many images decoded, how many sections show a heading and
# content, and the page's full height (for the screenshot). Read by the browser test.
CHECK_IMAGES = """window.addEventListener('load',function(){var i=[].slice.call(document.images);
var s=[].slice.call(document.querySelectorAll('section')),b=document.body;
b.setAttribute('data-images',i.length);
b.setAttribute('data-images-ok',i.filter(function(m){return m.complete&&m.naturalWidth>0}).length);
b.setAttribute('data-sections',s.length);
b.setAttribute('data-sections-shown',s.filter(function(x){return x.offsetHeight>40&&x.children.length>1&&
x.firstElementChild.textContent.length>0;}).length);
b.setAttribute('data-height',document.documentElement.scrollHeight);
b.setAttribute('data-width',document.documentElement.scrollWidth);
b.setAttribute('data-tables-wider',[].slice.call(document.querySelectorAll('table')).filter(function(t){
return t.getBoundingClientRect().right>b.getBoundingClientRect().right+1;}).length);});"""


def to_html(title: str, sections: list[Section]) -> str:
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
    ]
    for s in sections:
        out.append(f"<section id='{html.escape(_slug(s.title))}'><h{s.level}>{html.escape(s.title)}</h{s.level}>")
        for b in s.blocks:
            if isinstance(b, str):
                out.append(f"<p>{html.escape(b)}</p>")
            elif isinstance(b, Table):
                out.append(
                    "<table><tr>"
                    + "".join(f"<th>{html.escape(str(h)).replace('_', '_<wbr>')}</th>" for h in b.headers)
                    + "</tr>"
                )
                out.extend("<tr>" + "".join(f"<td>{html.escape(fmt(c))}</td>" for c in r) + "</tr>" for r in b.rows)
                out.append("</table>")
            elif isinstance(b, Figure):
                data = base64.b64encode(b.png).decode()
                out.append(
                    f"<figure><img alt='{html.escape(b.name)}' src='data:image/png;base64,{data}'>"
                    f"<figcaption>{html.escape(b.caption)}</figcaption></figure>"
                )
            elif isinstance(b, tuple) and b[0] == "code":
                out.append(f"<pre>{html.escape(b[1])}</pre>")
        out.append("</section>")
    out.append(f"<script>{CHECK_IMAGES}</script></body></html>")
    return "\n".join(out)


def to_markdown(title: str, sections: list[Section]) -> str:
    out = [f"# {title}", ""]
    for s in sections:
        out += ["#" * s.level + " " + s.title, ""]
        for b in s.blocks:
            if isinstance(b, str):
                out += [b, ""]
            elif isinstance(b, Table):
                out.append("| " + " | ".join(map(str, b.headers)) + " |")
                out.append("|" + "---|" * len(b.headers))
                out += [
                    "| " + " | ".join(fmt(c).replace("|", "/").replace("\n", " ") for c in r) + " |" for r in b.rows
                ]
                out.append("")
            elif isinstance(b, Figure):
                out += [f"![{b.name}]({REPORT_FILES}/{b.name}.png)", f"*{b.caption}*", ""]
            elif isinstance(b, tuple) and b[0] == "code":
                out += ["```yaml", b[1].rstrip(), "```", ""]
    return "\n".join(out)


def _slug(text: str) -> str:
    return files.safe_name(text.lower(), keep="", limit=len(text)).strip("-")


def write_report(folder: str | Path, title: str, sections: list[Section]) -> Path:
    """Write report.html, report.md and report_files/*.png into ``folder``; return the HTML path."""
    folder = Path(folder)
    for s in sections:
        for b in s.blocks:
            if isinstance(b, Figure):
                files.write_bytes(folder / REPORT_FILES / f"{b.name}.png", b.png)
    files.write_text(folder / "report.md", to_markdown(title, sections))
    files.write_text(folder / "report.html", to_html(title, sections))
    return folder / "report.html"
