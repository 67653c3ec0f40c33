"""Reports: run, sweep and study folders -> ``report.html`` (self-contained) and ``report.md``, and
a screenshot of the page in headless Chromium.

The pages are made by :mod:`featinv.reports.pages` (runs, sweeps) and :mod:`featinv.reports.study_pages` (the study's
questions); this module picks by what the folder holds and writes them.
"""

from __future__ import annotations

from pathlib import Path

from ..runs.layout import STUDY, SUMMARY, TRIALS_CSV
from .pages import read_run, run_sections, sweep_sections, write_report
from .study_pages import study_sections


def kind_of(folder: Path) -> str:
    """'study', 'sweep' or 'run' (or raise)."""
    from ..errors import RunFolderError

    folder = Path(folder)
    if (folder / STUDY).is_file():
        return "study"
    if (folder / TRIALS_CSV).is_file():
        return "sweep"
    if (folder / SUMMARY).is_file():
        return "run"
    raise RunFolderError(
        f"nothing to report in {str(folder)!r}: expected a run folder (summary.json), "
        f"a sweep folder (trials.csv) or a study folder (study.json)"
    )


def report(folder: str | Path) -> Path:
    """Write the report of a run, sweep or study folder; returns the path of report.html."""
    folder = Path(folder)
    kind = kind_of(folder)
    if kind == "run":
        return write_report(folder, f"featinv run: {folder.name}", run_sections(read_run(folder)))
    if kind == "sweep":
        return write_report(folder, f"featinv sweep: {folder.name}", sweep_sections(folder, "Trials"))
    title, sections = study_sections(folder)
    return write_report(folder, title, sections)


def find_chromium() -> str | None:
    import shutil

    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def chromium(html_path: Path, *extra: str, timeout: float = 120) -> str:
    """Run headless Chromium on a local file with a fresh profile; return its stdout."""
    import subprocess
    import tempfile

    from ..errors import FeatinvError

    exe = find_chromium()
    if exe is None:
        raise FeatinvError("no Chromium found: install it (Debian: apt-get install chromium) to take screenshots")
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, Path(html_path).resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    if proc.returncode != 0:
        raise FeatinvError(f"Chromium failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
    return proc.stdout


MAX_SCREENSHOT = 16_000  # px: Chromium's headless screenshots come back blank beyond its texture limit


def page_height(html_path: Path, width: int) -> int | None:
    """The rendered height of a report page at ``width`` (from the mark its script leaves)."""
    import re

    dom = chromium(html_path, "--dump-dom", "--virtual-time-budget=5000", f"--window-size={width},1000")
    found = re.search(r'data-height="(\d+)"', dom)
    return int(found.group(1)) if found else None


def screenshot(html_path: str | Path, width: int = 1200, height: int | None = None) -> Path:
    """Render report.html in headless Chromium and keep report.png beside it: the whole page, as
    measured in the browser (up to 16,000 px), unless ``height`` is given."""
    html_path = Path(html_path)
    height = height or min(page_height(html_path, width) or 4000, MAX_SCREENSHOT)
    out = html_path.with_suffix(".png")
    tmp = html_path.parent / f".{out.name}.tmp.png"
    chromium(html_path, f"--screenshot={tmp}", f"--window-size={width},{height}")
    tmp.replace(out)
    return out
