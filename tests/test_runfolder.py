import json

import pytest
import torch

from featinv.config import InvertConfig
from featinv.errors import RunFolderError
from featinv.optim.callbacks import StopAfter
from featinv.runs.runfolder import check_writable, run_in_folder

CONFIG = InvertConfig(
    image="skimage:chelsea", model="resnet18", weights="none", layers=("res2",), size=32, steps=12, snapshot_every=4
)


def test_a_run_folder_describes_itself(tmp_path):
    result = run_in_folder(CONFIG, tmp_path / "run")
    folder = tmp_path / "run"
    names = {p.name for p in folder.iterdir()}
    assert {
        "config.yaml",
        "env.json",
        "log.csv",
        "target.png",
        "final.png",
        "summary.json",
        "checkpoint.pt",
        "snapshots",
    } <= names
    assert sorted(p.name for p in (folder / "snapshots").iterdir()) == [
        "step_00004.png",
        "step_00008.png",
        "step_00012.png",
    ]
    summary = json.loads((folder / "summary.json").read_text())
    for key in ("psnr", "ssim", "feature_error", "seconds_per_step", "steps", "status", "ijcv_error"):
        assert key in summary
    assert summary["status"] == "done" and summary["steps"] == 12 and summary["pretrained"] is False
    assert summary["model"] == "resnet18 (random init)"
    lines = (folder / "log.csv").read_text().splitlines()
    assert lines[0] == "step,loss,feat_res2,tv,lr,seconds" and len(lines) == 13
    env = json.loads((folder / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["device"] == "cpu"
    assert result.paths["final.png"].is_file()


def test_existing_run_is_never_overwritten(tmp_path):
    run_in_folder(CONFIG, tmp_path / "run")
    before = (tmp_path / "run" / "final.png").read_bytes()
    with pytest.raises(RunFolderError, match="--resume"):
        run_in_folder(CONFIG, tmp_path / "run")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match="not a featinv run"):
        run_in_folder(CONFIG, tmp_path / "other")
    assert (tmp_path / "run" / "final.png").read_bytes() == before
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_resume_finished_is_a_noop_and_resume_with_other_config_refused(tmp_path):
    first = run_in_folder(CONFIG, tmp_path / "run")
    stamp = (tmp_path / "run" / "summary.json").stat().st_mtime_ns
    again = run_in_folder(CONFIG, tmp_path / "run", resume=True)
    assert (tmp_path / "run" / "summary.json").stat().st_mtime_ns == stamp
    assert again.summary["psnr"] == first.summary["psnr"]
    with pytest.raises(RunFolderError, match="lr"):
        run_in_folder(CONFIG.replace(lr=0.5), tmp_path / "run", resume=True)


def test_interrupted_run_resumes_to_the_same_image(tmp_path):
    full = run_in_folder(CONFIG, tmp_path / "full")
    cut = run_in_folder(CONFIG, tmp_path / "cut", callbacks=[StopAfter(6)])
    assert cut.status == "interrupted"
    assert json.loads((tmp_path / "cut" / "summary.json").read_text())["status"] == "interrupted"
    resumed = run_in_folder(CONFIG, tmp_path / "cut", resume=True)
    assert resumed.status == "done" and resumed.steps == 12
    assert torch.equal(resumed.image, full.image)
    assert len((tmp_path / "cut" / "log.csv").read_text().splitlines()) == 13


def test_unwritable_folder_fails_before_any_work(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError, match="cannot write"):
        check_writable(tmp_path / "file" / "run")

    def deny(self, data):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("pathlib.Path.write_bytes", deny)
    with pytest.raises(RunFolderError, match="Permission denied"):
        run_in_folder(CONFIG, tmp_path / "ro")


def test_tensorboard_logging(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_in_folder(CONFIG, tmp_path / "run", tensorboard=True)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert len(events.Scalars("loss")) == 12 and len(events.Scalars("feat_res2")) == 12
    assert [e.step for e in events.Images("image")] == [4, 8, 12]
