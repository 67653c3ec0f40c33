"""The explorer's web app (Starlette): the page, a JSON API, and each run's events (server-sent).

Routes (``NAME`` is a run folder relative to ``--runs``):

- ``GET /`` the page; ``GET /api/options`` photos, models, parameterisations, defaults, limits;
  ``GET /api/layers?model=&weights=&size=`` a model's layers with shapes, strides and defaults.
- ``POST /api/runs`` (a form: photo or upload, model, weights, layers, param, size, steps) queues
  a run and answers its NAME; ``GET /api/runs`` lists the runs, sweeps and studies.
- ``GET /api/runs/NAME/events`` streams the run: state, step, new losses, the image every few steps,
  the final numbers. ``POST /api/runs/NAME/stop``, ``.../resume``, ``.../report``;
  ``POST /api/compare`` (runs ``a`` and ``b``) writes a side-by-side page.
- ``GET /files/PATH`` a file under ``--runs`` (reports, images).

A bad request answers 400 with ``{"error": message}`` (the page shows it) and the server goes on.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..errors import FeatinvError
from .catalog import COMPARISONS, Limits, RequestError, check_layers, inside, layer_rows, list_runs, run_kind
from .jobs import FINISHED, Job, RunQueue

ENGINE = [
    f"featinv.{m}" for m in ("nets.models", "optim.layertable", "optim.recipes", "reports.report", "reports.compare")
]
POLL_SECONDS = 0.1  # how often a stream looks for news (a step takes tens of ms or more)


class Explorer:
    """The server's state: the runs folder, the queue, the loaded networks (shared by all runs)."""

    def __init__(self, runs: Path, queue: RunQueue, limits: Limits) -> None:
        self.runs, self.queue, self.limits = Path(runs).resolve(), queue, limits
        self._models: dict[tuple[str, str | None, bool], Any] = {}
        self._tables: dict[tuple[str, str | None, int], dict[str, Any]] = {}
        self._loading, self._inspecting, self._naming = threading.Lock(), threading.Lock(), threading.Lock()

    def model(self, name: str, weights: str | None, inspect: bool = False) -> Any:
        """The loaded network: runs share one copy; the page's questions (layer tables, layer
        checks) get another, since tracing a network flips it to train mode and back, which must
        never happen under a run's steps."""
        from ..nets.models import load_model

        with self._loading:
            key = (name, weights, inspect)
            if key not in self._models:
                self._models[key] = load_model(name, weights)
            return self._models[key]

    def layers(self, name: str, weights: str | None, size: int) -> dict[str, Any]:
        """The page's layer table for a model at ``size`` (computed once; one at a time)."""
        with self._inspecting:
            key = (name, weights, size)
            if key not in self._tables:
                self._tables[key] = layer_rows(self.model(name, weights, inspect=True), size)
            return self._tables[key]

    def job(self, name: str) -> Job:
        """This server's job for run NAME, or one read from its folder (a run from before)."""
        if name in self.queue.jobs:
            return self.queue.jobs[name]
        folder = inside(self.runs, name)
        if run_kind(folder) != "run":
            raise RequestError(f"no run named {name!r} under the runs folder: expected a run folder (config.yaml)")
        return job_from_folder(name, folder)

    def new_run(self, form: dict[str, Any], upload: tuple[bytes, str] | None) -> Job:
        """Check the request, write the run folder's config, queue it."""
        from .. import files
        from ..config import to_yaml
        from ..optim.recipes import with_recipe
        from ..runs.layout import CONFIG
        from ..runs.runfolder import new_folder_name
        from .catalog import save_upload

        options: dict[str, Any] = {}
        for key in ("model", "weights", "param", "layers"):
            if form.get(key):
                options[key] = form[key]
        for key in ("size", "steps"):
            if form.get(key):
                try:
                    options[key] = int(form[key])
                except ValueError:
                    raise RequestError(f"{key} must be a whole number, got {form[key]!r}") from None
        if upload is not None:
            options["image"] = str(save_upload(self.runs, *upload))
        elif form.get("photo"):
            options["image"] = form["photo"]
        config, header = with_recipe({}, options)
        self.limits.check(config.size, config.steps)
        with self._inspecting:
            check_layers(self.model(config.model, config.weights, inspect=True), config.layers)
        model = self.model(config.model, config.weights)
        files.read_image(config.image)  # a photo that cannot be read fails here, not in the worker
        photo = files.sample_name(config.image) or ("upload" if upload else Path(config.image).stem)
        layers = "+".join(layer.split(":")[0] for layer in config.layers) or "default"
        stem = files.safe_name(f"{photo}_{Path(config.model).stem}_{layers}", limit=100)
        with self._naming:  # two requests at once never pick the same new folder
            folder = new_folder_name(self.runs, stem)
            files.write_text(folder / CONFIG, to_yaml(config, header))  # a run folder from now on: resumable
        job = Job(folder.relative_to(self.runs).as_posix(), folder, config, model)
        try:
            return self.queue.submit(job)
        except FeatinvError:
            (folder / CONFIG).unlink()
            folder.rmdir()
            raise

    def resume(self, name: str) -> Job:
        from ..runs.runfolder import stored_config

        job = self.job(name)
        if job.state in ("queued", "running"):
            raise RequestError(f"the run {name!r} is {job.state} already")
        config = stored_config(job.folder)
        if config.param == "custom" or config.image.startswith("<"):
            raise RequestError(
                f"the run {name!r} was made from Python with parts of its own (a module, an image in "
                f"memory): resume it there, with featinv.invert(..., out=..., resume=True)"
            )
        job.config, job.model = config, self.model(config.model, config.weights)
        return self.queue.submit(job)


def job_from_folder(name: str, folder: Path) -> Job:
    """A run's page state from its files: how it ended, its losses, target | its latest image."""
    import torch

    from .. import files
    from ..optim.results import png_bytes, side_by_side
    from ..runs.layout import FINAL, TARGET, read_log
    from ..runs.runfolder import read_summary

    summary = read_summary(folder)
    losses = [row["loss"] for row in read_log(folder)] if (folder / "log.csv").is_file() else []
    job = Job(name, folder, None, state=str(summary["status"]) if summary else "interrupted", summary=summary)
    job.losses, job.step = losses, len(losses)
    snapshots = sorted((folder / "snapshots").glob("step_*.png"))
    latest = folder / FINAL if (folder / FINAL).is_file() else (snapshots[-1] if snapshots else None)
    if (folder / TARGET).is_file():
        target = files.read_image(folder / TARGET)
        image = files.read_image(latest) if latest else torch.zeros_like(target)
        job.frame, job.frame_step = png_bytes(side_by_side(target, image)), job.step
    job.steps = int(summary["steps"]) if summary else job.step
    return job


def event(job: Job, losses_sent: int, frame_sent: int) -> dict[str, Any]:
    """What a stream sends: the news since ``losses_sent`` losses and the frame of ``frame_sent``."""
    return {
        "name": job.name,
        "state": job.state,
        "step": job.step,
        "steps": job.steps or (job.config.steps if job.config is not None else 0),
        "from": losses_sent,
        "losses": job.losses[losses_sent:],
        "frame": base64.b64encode(job.frame).decode("ascii") if job.frame and job.frame_step != frame_sent else None,
        "frame_step": job.frame_step,
        "summary": job.summary if job.state in FINISHED else None,
        "error": job.error,
    }


def create_app(runs: Path, capacity: int = 8, limits: Limits = Limits(), every: int = 5) -> Starlette:
    """The explorer for run folders under ``runs``: ``capacity`` runs may wait, one runs."""
    from .page import PAGE

    # torch, torchvision and featinv's engine imported here, once: two requests importing them
    # at once in the server's threads found torchvision half imported
    for module in ENGINE:
        importlib.import_module(module)

    runs = Path(runs)
    runs.mkdir(parents=True, exist_ok=True)
    explorer = Explorer(runs, RunQueue(capacity, every=every, start=False), limits)

    def fail(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE)

    async def options(request: Request) -> Response:
        from ..config import InvertConfig
        from ..nets.models import DEFAULT_MODEL
        from ..specs import PARAMS
        from .catalog import models, photos

        return JSONResponse(
            {
                "photos": photos(),
                "models": await run_in_threadpool(models),
                "params": list(PARAMS),
                "defaults": {"model": DEFAULT_MODEL, "size": InvertConfig.size, "steps": InvertConfig.steps},
                "limits": {"max_size": limits.max_size, "max_steps": limits.max_steps},
                "runs": str(explorer.runs),
            }
        )

    async def layers(request: Request) -> Response:
        q = request.query_params
        try:
            size = int(q.get("size", "128"))
        except ValueError:
            raise RequestError(f"size must be a whole number, got {q.get('size')!r}") from None
        limits.check(size, 1)
        weights = q.get("weights") or None
        return JSONResponse(await run_in_threadpool(explorer.layers, q.get("model", "vgg16_offline"), weights, size))

    async def start(request: Request) -> Response:
        form = await request.form()
        upload = form.get("upload")
        given = None
        if upload is not None and not isinstance(upload, str) and upload.filename:
            given = (await upload.read(), upload.filename)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        job = await run_in_threadpool(explorer.new_run, fields, given)
        return JSONResponse({"name": job.name, "state": job.state})

    async def listing(request: Request) -> Response:
        found = await run_in_threadpool(list_runs, explorer.runs)
        for row in found:  # this server's runs: their live state
            if row["name"] in explorer.queue.jobs:
                row["state"] = explorer.queue.jobs[row["name"]].state
        return JSONResponse({"runs": found, "waiting": explorer.queue.waiting()})

    async def events(request: Request) -> Response:
        from sse_starlette.sse import EventSourceResponse

        job = await run_in_threadpool(explorer.job, request.path_params["name"])

        async def stream() -> AsyncIterator[dict[str, str]]:
            seen, losses_sent, frame_sent = -1, 0, -2
            while True:
                current = explorer.queue.jobs.get(job.name, job)  # a run resumed meanwhile: the queue's job
                if current.version != seen:
                    seen = current.version
                    news = event(current, losses_sent, frame_sent)
                    losses_sent, frame_sent = losses_sent + len(news["losses"]), current.frame_step
                    yield {"data": json.dumps(news)}
                await asyncio.sleep(POLL_SECONDS)

        return EventSourceResponse(stream(), ping=10)

    async def stop(request: Request) -> Response:
        job = await run_in_threadpool(explorer.job, request.path_params["name"])
        if job.state not in ("queued", "running"):
            raise RequestError(f"the run {job.name!r} is not running (it is {job.state})")
        explorer.queue.stop(job)
        return JSONResponse({"name": job.name, "state": job.state})

    async def resume(request: Request) -> Response:
        job = await run_in_threadpool(explorer.resume, request.path_params["name"])
        return JSONResponse({"name": job.name, "state": job.state})

    async def report(request: Request) -> Response:
        from ..reports.report import report as write_report

        folder = inside(explorer.runs, request.path_params["name"])
        if run_kind(folder) is None:
            raise RequestError(f"nothing to report in {request.path_params['name']!r}: expected a run, sweep or study")
        path = await run_in_threadpool(write_report, folder)
        return JSONResponse({"url": "/files/" + path.relative_to(explorer.runs).as_posix()})

    async def compare(request: Request) -> Response:
        from ..files import safe_name
        from ..reports.compare import compare as write_comparison
        from ..runs.runfolder import new_folder_name

        form = await request.form()
        a, b = str(form.get("a") or ""), str(form.get("b") or "")
        if not a or not b or a == b:
            raise RequestError("choose two different runs to put side by side")
        folders = [inside(explorer.runs, a), inside(explorer.runs, b)]
        out = new_folder_name(explorer.runs / COMPARISONS, safe_name(f"{a}__vs__{b}".replace("/", "-"), limit=120))
        path = await run_in_threadpool(write_comparison, folders, out)
        return JSONResponse({"url": "/files/" + path.relative_to(explorer.runs).as_posix()})

    async def file(request: Request) -> Response:
        path = inside(explorer.runs, request.path_params["path"])
        if not path.is_file():
            return fail(f"no file {request.path_params['path']!r} under the runs folder", 404)
        return FileResponse(path)

    async def refused(request: Request, exc: Exception) -> Response:
        return fail(str(exc))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        explorer.queue._thread.start()
        try:
            yield
        finally:  # Ctrl-C: the running run stops after its step and writes its checkpoint
            await run_in_threadpool(explorer.queue.close)

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/api/options", options),
            Route("/api/layers", layers),
            Route("/api/runs", start, methods=["POST"]),
            Route("/api/runs", listing),
            Route("/api/runs/{name:path}/events", events),
            Route("/api/runs/{name:path}/stop", stop, methods=["POST"]),
            Route("/api/runs/{name:path}/resume", resume, methods=["POST"]),
            Route("/api/runs/{name:path}/report", report, methods=["POST"]),
            Route("/api/compare", compare, methods=["POST"]),
            Route("/files/{path:path}", file),
        ],
        exception_handlers={FeatinvError: refused},
        lifespan=lifespan,
    )
    app.state.explorer = explorer
    return app
