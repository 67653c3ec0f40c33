"""How long `featinv serve` makes a user wait, measured as a user meets it, and the README's
screenshot of the page.

Starts `featinv serve --port 0` in its own process and times (1) the command to a page that
answers, (2) clicking Start on the defaults (the offline VGG16, relu3_3, 128 px) to the first image
on the page and to the first image of the reconstruction after a step, in headless Chromium
(Debian's, through Playwright). Then lets that run finish and saves docs/explorer.png.

    python benchmarks/explorer.py [--photo skimage:coffee] [--screenshot docs/explorer.png]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

# the page's image changes, with the status line at that moment and the time (ms since the page began)
RECORD = """
window.frames_seen = [];
new MutationObserver(() => {
  const img = document.getElementById("live"), status = document.getElementById("status");
  if (img && img.src) window.frames_seen.push([performance.now(), status.textContent]);
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["src"]});
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", default="skimage:coffee")
    parser.add_argument("--screenshot", type=Path, default=None)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from featinv.reports.report import find_chromium

    runs = Path(tempfile.mkdtemp(prefix="featinv-explorer-")) / "runs"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "featinv", "serve", "--runs", str(runs), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = proc.stdout.readline().split()[2]
        while True:
            try:
                urllib.request.urlopen(url, timeout=5).read()
                break
            except OSError:
                time.sleep(0.05)
        answered = time.perf_counter() - t0
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=find_chromium(), headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.add_init_script(RECORD)
            page.goto(url)
            page.wait_for_function("document.getElementById('layer-note').textContent.includes(' px: ')")
            page.select_option("#photo", args.photo)
            clicked = page.evaluate("performance.now()")
            page.click("#start")
            page.wait_for_function("document.getElementById('numbers').textContent.includes('PSNR')", timeout=600_000)
            frames = page.evaluate("window.frames_seen")
            first = next(t for t, status in frames if t > clicked)
            stepped = next(t for t, status in frames if t > clicked and "step 0/" not in status)
            out = {
                "command_to_page_s": round(answered, 2),
                "start_to_first_image_s": round((first - clicked) / 1000, 2),
                "start_to_first_step_image_s": round((stepped - clicked) / 1000, 2),
                "images_shown": sum(t > clicked for t, _ in frames),
                "final": page.inner_text("#numbers"),
            }
            if args.screenshot:
                page.screenshot(path=str(args.screenshot), full_page=False)
                out["screenshot"] = str(args.screenshot)
            browser.close()
        print(json.dumps(out, indent=1))
    finally:
        proc.terminate()
        proc.wait(timeout=60)


if __name__ == "__main__":
    main()
