"""``featinv serve``: the live explorer, a local web app for the whole workflow.

Pick or upload a photo, a model (offline ones first), a layer (with shapes and strides) and the
rest; start; watch the reconstruction and the loss curve as the run steps; stop and resume; browse
the runs, sweeps and studies under ``--runs`` and open their reports; put two runs side by side.
Its runs are normal run folders (``featinv invert --resume --out FOLDER`` continues one).

Built on Starlette (a small ASGI toolkit) served by uvicorn, with server-sent events for the live
stream (sse-starlette) and a page of plain HTML and JavaScript, rather than Gradio: featinv's page
is one screen with a stream of images and numbers, which an event stream and a hundred lines of
script do exactly, offline (no CDN, no telemetry, no frontend build), with four small pure-Python
dependencies instead of Gradio's hundred; the routes stay testable in a real browser.

Layout: :mod:`.catalog` (what the page offers and the checks a request goes through),
:mod:`.jobs` (the queue and the worker thread), :mod:`.app` (routes), :mod:`.page` (the page).
"""

from __future__ import annotations

import socket
from pathlib import Path


def serve(
    runs: str | Path = "runs",
    host: str = "127.0.0.1",
    port: int = 8765,
    capacity: int = 8,
    max_size: int = 1024,
    max_steps: int = 20000,
    announce: bool = True,
) -> None:
    """Serve the explorer for run folders under ``runs`` until Ctrl-C (every run folder stays
    resumable: the running run stops after its step and writes its checkpoint). ``port`` 0 picks
    a free port; the first line printed is the address."""
    import uvicorn

    from .app import create_app
    from .catalog import Limits

    app = create_app(Path(runs), capacity, Limits(max_size, max_steps))
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    shown = f"[{host}]" if ":" in host else host
    if announce:
        print(f"featinv explorer: http://{shown}:{sock.getsockname()[1]}/ (runs in {runs}; Ctrl-C stops)", flush=True)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
