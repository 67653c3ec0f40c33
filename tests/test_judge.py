"""The judge: an independent network's eye on a reconstruction (featinv.nets.judge)."""

import pytest
import torch
import torch.nn.functional as F

from featinv.files import read_image
from featinv.nets.judge import Judge, judge_for

PHOTOS = ("skimage:coffee", "skimage:chelsea", "skimage:astronaut", "skimage:rocket", "skimage:camera")


@pytest.fixture(scope="module")
def photos():
    return torch.stack(
        [F.interpolate(read_image(p)[None], size=(128, 128), antialias=True, mode="bilinear")[0] for p in PHOTOS]
    )


@pytest.fixture(scope="module", params=["efficientnet_lite0_offline", "vgg16_offline"])
def judge(request):
    return Judge(request.param)


def test_a_photo_judges_as_itself_and_so_does_its_mirror_image(judge, photos):
    for seen in (photos, photos.flip(-1)):
        verdicts = judge.verdicts(seen, photos)
        assert [v.rank for v in verdicts] == [1] * len(PHOTOS)
        assert all(v.cosine > 0.9 for v in verdicts)
    assert all(v.cosine == pytest.approx(1, abs=1e-4) for v in judge.verdicts(photos, photos))
    if judge.classifier:
        assert all(v.class_agreement for v in judge.verdicts(photos, photos))


def test_a_flat_image_of_the_photos_mean_colour_is_not_recognised(judge, photos):
    flat = photos.mean(dim=(2, 3), keepdim=True).expand_as(photos).contiguous()
    verdicts = judge.verdicts(flat, photos)
    assert all(v.cosine < 0.5 for v in verdicts)
    assert sum(v.rank > 1 for v in verdicts) >= 3  # by chance it may sit nearest one photo
    if judge.classifier:
        assert sum(not v.class_agreement for v in verdicts) >= 4
    real = judge.verdicts(photos.flip(-1), photos)
    assert all(r.cosine > f.cosine + 0.4 for r, f in zip(real, verdicts))


def test_class_agreement_on_a_photo_of_a_known_class(photos):
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    judge = Judge("efficientnet_lite0_offline")
    _, probs = judge.look(photos[:1])  # coffee
    top5 = {_IMAGENET_CATEGORIES[i] for i in probs[0].topk(5).indices.tolist()}
    assert top5 & {"cup", "espresso", "coffee mug"}
    verdict = judge.verdicts(photos[:1], photos)[0]
    assert verdict.original_class in top5 and verdict.class_agreement


def test_the_judge_is_never_the_network_inverted():
    for model in ("vgg16_offline", "efficientnet_lite0_offline", "mobilenet_v2_offline", "resnet18"):
        assert judge_for(model) != model


def test_judge_option_writes_the_verdict_to_the_summary_and_says_it(tmp_path):
    import json

    from conftest import run_cli

    args = ["invert", "skimage:coffee", "--size", "32", "--steps", "3"]
    proc = run_cli(*args, "--judge", "--out", str(tmp_path / "judged"))
    assert proc.returncode == 0, proc.stderr
    verdict = json.loads((tmp_path / "judged" / "summary.json").read_text())["judge"]
    assert verdict["judge"] == "efficientnet_lite0_offline" and verdict["gallery"] == 22  # the target + 21 built-in
    assert 1 <= verdict["rank"] <= 22 and -1 <= verdict["cosine"] <= 1 and verdict["original_class"]
    assert f"own photo ranked {verdict['rank']} of 22" in proc.stdout
    assert run_cli(*args, "--out", str(tmp_path / "plain")).returncode == 0
    assert "judge" not in json.loads((tmp_path / "plain" / "summary.json").read_text())  # opt-in
    side = run_cli("compare", str(tmp_path / "judged"), str(tmp_path / "plain"), "--out", str(tmp_path / "cmp"))
    page = (tmp_path / "cmp" / "report.html").read_text()
    assert side.returncode == 0 and "own photo&#x27;s rank" in page and f"{verdict['rank']} of 22" in page
