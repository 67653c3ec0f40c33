"""`featinv serve`: the explorer, driven in a real headless Chromium (Debian's, through Playwright),
served by its own process as a user starts it; and its checks and queue on their own."""

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import run_cli, run_cli_process
from featinv.runs.runfolder import is_finished, read_summary

# a random ResNet-18 at 64 px: tens of ms a step, so a run is seen forming and ends in seconds
RUN = {"model": "resnet18", "weights": "none", "size": "64"}

# the test's own eyes on the page: every change of the image, with the status line at that moment
RECORD_FRAMES = """
window.seenFrames = [];
new MutationObserver(() => {
  const img = document.getElementById("live"), status = document.getElementById("status");
  if (img && img.src) window.seenFrames.push([img.src, status.dataset.state]);
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["src"]});
"""


@pytest.fixture
def explorer(tmp_path):
    """`featinv serve --port 0` in its own process: (its address, the runs folder, the process)."""
    runs, log = tmp_path / "runs", tmp_path / "serve.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as stderr:  # a file, not a pipe nobody reads: the server never blocks on it
        proc = subprocess.Popen(
            [sys.executable, "-m", "featinv", "serve", "--runs", str(runs), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        )
    line = proc.stdout.readline()
    assert line.startswith("featinv explorer: http://127.0.0.1:"), (line, log.read_text())
    yield line.split()[2], runs, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    print("the server's stderr:", log.read_text()[-4000:])  # shown when a test fails


@pytest.fixture
def browser(chromium_installed):
    from playwright.sync_api import sync_playwright

    from featinv.reports.report import find_chromium

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=find_chromium(), headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def open_page(browser, url):
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.add_init_script(RECORD_FRAMES)
    page.on("console", lambda m: print("console:", m.text))
    page.on("response", lambda r: r.status >= 400 and print("response:", r.status, r.url))
    page.on("pageerror", lambda e: print("page error:", e))
    page.goto(url)
    page.wait_for_function("document.getElementById('layers').value.length > 0")  # the default model's layers
    return page


def fill_run(page, layers="res2", steps="300", **fields):
    fields = {**RUN, **fields}
    page.select_option("#model", fields["model"])
    page.select_option("#weights", fields["weights"])
    page.fill("#size", fields["size"])
    page.press("#size", "Tab")  # leaving the field: the page asks for the layers at that size
    page.wait_for_function(
        "(t) => document.getElementById('layer-note').textContent.startsWith(t)",
        arg=f"resnet18 (random init) at {fields['size']} px",
    )
    page.fill("#layers", layers)
    page.fill("#steps", steps)


def start_and_finish(page):
    """Click Start and wait for the new run's final numbers; its name."""
    before = page.inner_text("#title")
    page.click("#start")
    page.wait_for_function(
        "(before) => document.getElementById('title').textContent !== before"
        " && document.getElementById('numbers').textContent.includes('PSNR')",
        arg=before,
        timeout=120_000,
    )
    return page.inner_text("#title")


def shows_error(page, text):
    try:
        page.wait_for_function("(t) => document.getElementById('error').textContent.includes(t)", arg=text)
    except Exception:
        pytest.fail(f"expected an error with {text!r} on the page, it shows {page.inner_text('#error')!r}")
    message = page.inner_text("#error")
    assert page.is_visible("#error")
    return message


def test_a_run_is_started_watched_reported_and_compared_from_the_page(explorer, browser):
    url, runs, proc = explorer
    page = open_page(browser, url)
    assert "skimage:coffee" in page.inner_text("#photo")
    assert "needs a download" in page.inner_text("#model")  # torchvision's weights are not cached here
    assert page.input_value("#model") == "vgg16_offline" and page.input_value("#layers") == "relu3_3"

    # a bad layer: the message on the page, and the server goes on serving
    fill_run(page, layers="res99")
    page.click("#start")
    assert "Did you mean" in shows_error(page, "unknown layer 'res99'")
    page.fill("#size", "99999")
    page.fill("#layers", "res2")
    page.click("#start")
    shows_error(page, "size must be 16 to 1024")
    page.fill("#size", "64")
    page.press("#size", "Tab")
    page.wait_for_function("document.getElementById('layer-note').textContent.includes('at 64 px')")
    page.set_input_files("#upload", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}])
    page.click("#start")
    shows_error(page, "the file 'notes.txt' is not an image")
    page.set_input_files("#upload", files=[])
    outside = page.request.get(url + "files/..%2f..%2fetc%2fpasswd")  # %2f: the browser keeps the ..
    assert outside.status == 400 and "outside the runs folder" in outside.json()["error"]
    assert not any(runs.iterdir()) or [p.name for p in runs.iterdir()] == ["uploads"]  # no run folder made

    # a run from the page: the image changes while it runs, then the final numbers
    fill_run(page, steps="300")
    page.select_option("#photo", "skimage:coffee")
    name = start_and_finish(page)
    assert page.is_hidden("#error")
    frames = page.evaluate("window.seenFrames")
    while_running = {src for src, state in frames if state == "running"}
    assert len(while_running) >= 2, [(len(src), state) for src, state in frames]  # two images while it ran
    assert page.get_attribute("#status", "data-state") == "done"
    summary = read_summary(runs / name)
    assert summary["steps"] == 300 and f"PSNR {summary['psnr']:.2f} dB" in page.inner_text("#numbers")

    # its report, in the page
    page.click("#report")
    page.wait_for_function("document.getElementById('viewer').src.includes('report.html')", timeout=60_000)
    report = page.frame_locator("#viewer")
    assert name in report.locator("h1").inner_text(timeout=30_000)
    assert (runs / name / "report.html").is_file()

    # a second run, then the two side by side
    fill_run(page, layers="res3", steps="40")
    other = start_and_finish(page)
    page.wait_for_function("document.querySelectorAll('#runs tr.run').length == 2", timeout=10_000)
    boxes = page.locator("#runs input[type=checkbox]")  # a locator: the table is redrawn every 3 s
    for i in range(boxes.count()):
        boxes.nth(i).check()
    page.click("#compare")
    page.wait_for_function(
        "document.getElementById('viewer').src.includes('compare/') || document.getElementById('error').textContent",
        timeout=60_000,
    )
    assert page.is_hidden("#error"), page.inner_text("#error")
    compared = page.frame_locator("#viewer").locator("body").inner_text(timeout=30_000)
    assert name in compared and other in compared
    assert proc.poll() is None


def test_a_run_stops_resumes_survives_the_browser_and_ctrl_c(explorer, browser, tmp_path):
    url, runs, proc = explorer
    page = open_page(browser, url)
    fill_run(page, steps="1500")
    page.click("#start")
    page.wait_for_function(
        "(document.getElementById('status').textContent.match(/step (\\d+)/) || [0, 0])[1] > 20", timeout=60_000
    )
    name = page.inner_text("#title")
    page.click("#stop")
    page.wait_for_function("document.getElementById('status').dataset.state == 'interrupted'", timeout=30_000)
    stopped_at = int(read_summary(runs / name)["steps"])
    assert 20 < stopped_at < 1500 and (runs / name / "checkpoint.pt").is_file()

    page.click("#resume")  # continues from its checkpoint, not from step 0
    page.wait_for_function(
        f"(document.getElementById('status').textContent.match(/step (\\d+)/) || [0, 0])[1] > {stopped_at + 20}",
        timeout=60_000,
    )
    page.close()  # closing the browser loses nothing: the run goes on in the server
    time.sleep(1)
    page = open_page(browser, url)
    page.click(f"#runs tr[data-name='{name}']")
    page.wait_for_function("document.getElementById('status').dataset.state == 'running'", timeout=30_000)

    proc.send_signal(signal.SIGINT)  # Ctrl-C: the server stops, the run writes its checkpoint
    proc.wait(timeout=60)
    err = (tmp_path / "serve.log").read_text()
    assert proc.returncode == 0, err
    assert "resumable" in err and "Traceback" not in err
    summary = read_summary(runs / name)
    assert summary["status"] == "interrupted" and summary["steps"] > stopped_at + 20
    assert not is_finished(runs / name)
    done = run_cli("invert", "--resume", "--out", str(runs / name))
    assert done.returncode == 0, done.stderr
    assert read_summary(runs / name)["steps"] == 1500


def test_serve_refuses_a_taken_port_in_one_line(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run_cli_process("serve", "--runs", str(tmp_path), "--port", str(port), timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().startswith(f"featinv: error: cannot listen on 127.0.0.1:{port}")
    assert len(out.stderr.strip().splitlines()) == 1


def test_a_full_queue_is_refused_and_a_waiting_run_stopped_stays_resumable(tmp_path):
    from featinv.config import InvertConfig
    from featinv.serve.jobs import Job, QueueFull, RunQueue

    queue = RunQueue(capacity=2, start=False)
    first, second = (Job(n, tmp_path / n, InvertConfig()) for n in "ab")
    queue.submit(first)
    queue.submit(second)
    with pytest.raises(QueueFull, match="the queue is full"):
        queue.submit(Job("c", tmp_path / "c", InvertConfig()))
    queue.stop(first)
    assert first.state == "interrupted" and queue.waiting() == 1
    queue.submit(Job("c", tmp_path / "c", InvertConfig()))  # room again
    assert queue.waiting() == 2


def test_a_sweep_under_runs_is_listed_and_its_report_opens_in_the_page(explorer, browser):
    import featinv

    url, runs, proc = explorer
    base = {"model": "resnet18", "weights": "none", "layers": "res1", "size": 16, "steps": 2}
    featinv.sweep({"base": base, "grid": {"lr": [0.01, 0.1]}}, runs / "lr-sweep")
    page = open_page(browser, url)
    row = "#runs tr[data-name='lr-sweep']"
    page.wait_for_selector(row, timeout=10_000)
    assert "(sweep)" in page.inner_text(row)
    page.click(row)  # a sweep opens its report (written on demand)
    page.wait_for_function("document.getElementById('viewer').src.includes('lr-sweep/report.html')", timeout=60_000)
    assert "lr-sweep" in page.frame_locator("#viewer").locator("h1").inner_text(timeout=30_000)
    assert (runs / "lr-sweep" / "report.html").is_file() and page.is_hidden("#error")
