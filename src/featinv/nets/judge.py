"""An independent network's eye: is a reconstruction recognisable as its photo?

PSNR rewards the mean level, which a deep layer does not pin down; a person judges by what is
there. So a second network, not the one inverted, looks at the reconstruction and the originals:

- **retrieval**: the rank of the photo's own original among a gallery (the other photos, and
  distractors) by cosine of the judge's pooled features; 1 = it finds its own photo;
- **class agreement**: the original's top-1 ImageNet class among the reconstruction's top 5 (only
  with a judge that has a classifier: EfficientNet-Lite0), and whether the judge was confident
  (≥ 0.3) about the original at all;
- **cosine** of the two pooled feature vectors.

VGG16's reconstructions are judged by EfficientNet-Lite0 (:func:`judge_for`); the others by the
offline VGG16's pooled pool5 features. Images go to the judge at 224 px, the size it was trained at.

>>> judge = Judge("efficientnet_lite0_offline")
>>> photos = torch.rand(3, 3, 64, 64)
>>> [v.rank for v in judge.verdicts(photos, photos)]
[1, 1, 1]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .models import load_model

JUDGE_SIZE = 224
CONFIDENT = 0.3  # the judge's probability for the original's class, above which it "knows" the photo


def judge_for(model: str) -> str:
    """The offline network that judges ``model``'s reconstructions (never the model itself)."""
    return "efficientnet_lite0_offline" if model == "vgg16_offline" else "vgg16_offline"


@dataclass(frozen=True)
class Verdict:
    """How one reconstruction looks to the judge."""

    rank: int  # of its own original in the gallery by cosine; 1 = recognised
    cosine: float  # between the reconstruction's and the original's pooled features
    class_agreement: bool | None  # original's top-1 class in the reconstruction's top 5 (None: no classifier)
    confident: bool | None  # the judge's probability for the original's top-1 class >= CONFIDENT
    original_class: str | None  # that class's ImageNet name


class Judge:
    """A frozen offline network that embeds images ``[B, 3, H, W]`` in [0, 1] (and, for
    EfficientNet-Lite0, classifies them)."""

    def __init__(self, name: str = "efficientnet_lite0_offline", size: int = JUDGE_SIZE) -> None:
        loaded = load_model(name)
        self.name, self.size, self.preprocess = name, size, loaded.preprocess
        module = loaded.module
        self.classifier = hasattr(module, "forward_head")  # timm's EfficientNet: pooled features and logits
        self.trunk: Any = module if self.classifier else module.features

    @torch.no_grad()
    def look(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Unit-length pooled features ``[B, D]`` and, with a classifier, class probabilities ``[B, 1000]``."""
        x = self.preprocess(F.interpolate(images.float(), size=(self.size, self.size), mode="bilinear", antialias=True))
        if self.classifier:
            maps = self.trunk.forward_features(x)
            pooled = self.trunk.forward_head(maps, pre_logits=True)
            probs = self.trunk.forward_head(maps).softmax(dim=1)
        else:
            pooled, probs = self.trunk(x).mean(dim=(2, 3)), None
        return F.normalize(pooled, dim=1), probs

    def verdicts(
        self, reconstructions: torch.Tensor, originals: torch.Tensor, distractors: torch.Tensor | None = None
    ) -> list[Verdict]:
        """One verdict per reconstruction ``i``, whose photo is ``originals[i]``; the gallery it is
        retrieved from is every original and the ``distractors``."""
        from torchvision.models._meta import _IMAGENET_CATEGORIES

        seen, seen_probs = self.look(reconstructions)
        truth, truth_probs = self.look(originals)
        gallery = (
            truth if distractors is None or not len(distractors) else torch.cat([truth, self.look(distractors)[0]])
        )
        similarity = seen @ gallery.T  # [N, gallery]
        out = []
        for i in range(len(reconstructions)):
            own = similarity[i, i]
            agreement = confident = name = None
            if seen_probs is not None and truth_probs is not None:
                top1 = int(truth_probs[i].argmax())
                agreement = top1 in seen_probs[i].topk(5).indices.tolist()
                confident = bool(truth_probs[i, top1] >= CONFIDENT)
                name = _IMAGENET_CATEGORIES[top1]
            rank = 1 + int((similarity[i] > own).sum())
            out.append(Verdict(rank, float(own), agreement, confident, name))
        return out


def judge_one(image: torch.Tensor, target: torch.Tensor, model: str) -> dict[str, Any]:
    """The verdict on one reconstruction ``image`` of ``target`` (``[3, H, W]``), inverted from
    ``model``: its gallery is the target and every built-in photo (a built-in target's twin does
    not count against it: the rank counts photos strictly nearer). What ``--judge`` writes.

    >>> grey = torch.full((3, 32, 32), 0.5)
    >>> v = judge_one(grey, grey, "vgg16_offline")
    >>> v["rank"], v["judge"], round(v["cosine"], 3)
    (1, 'efficientnet_lite0_offline', 1.0)
    """
    from ..files import SAMPLES, load_target

    photos = [load_target(prefix + name, target.shape[-1]) for prefix, names in SAMPLES.items() for name in names]
    name = judge_for(model)
    verdict = Judge(name).verdicts(image[None], target[None], torch.stack(photos))[0]
    return {"judge": name, "gallery": len(photos) + 1, **asdict(verdict)}
