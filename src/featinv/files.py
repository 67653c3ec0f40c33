"""Reading and writing images and run files. The only module that touches image files.

Images live in memory as float tensors ``[3, H, W]`` in RGB ``[0, 1]``. Every write is atomic:
the data goes to a temporary file in the same folder, which is then renamed over the target,
so an interrupted write never leaves a half-written file behind.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.v2 import functional as TF

from .errors import ImageError, did_you_mean

# Photos that ship inside scikit-image (no download needed), usable as ``skimage:NAME``.
SAMPLE_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field",
                 "immunohistochemistry", "retina", "logo", "coins", "moon", "text")
SAMPLE_PREFIX = "skimage:"
Image.MAX_IMAGE_PIXELS = 400_000_000  # huge photos are fine: we read them once and shrink them


def _pixels_01(img: Image.Image) -> np.ndarray:
    """Any Pillow image as float32 RGB ``[H, W, 3]`` in [0, 1].

    Grey and palette images are expanded, transparent pixels are composited on white, and
    16/32-bit images are scaled by their type's range (not clipped to 8 bits).
    """
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        grey = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or grey.max() > 255 else 255.0
        if img.mode == "F":
            top = max(float(grey.max()), 1.0)
        return np.repeat(np.clip(grey / top, 0, 1)[..., None], 3, axis=2).astype(np.float32)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def _sample_pixels(name: str) -> np.ndarray:
    import skimage.data  # imported late: only samples need it

    if name not in SAMPLE_IMAGES:
        raise ImageError(f"unknown sample image {SAMPLE_PREFIX}{name!r}: expected one of "
                         f"{', '.join(SAMPLE_IMAGES)}.{did_you_mean(name, SAMPLE_IMAGES)}")
    arr = getattr(skimage.data, name)()
    return _pixels_01(Image.fromarray(arr))


# Files handed over in memory (a sweep worker that does not share the driver's disk): path -> bytes.
PROVIDED_FILES: dict[str, bytes] = {}


def read_image(source: str | os.PathLike[str]) -> torch.Tensor:
    """Read an image file (or ``skimage:NAME``) as an RGB ``[3, H, W]`` float tensor in [0, 1].

    >>> read_image("skimage:chelsea").shape
    torch.Size([3, 300, 451])
    """
    source = str(source)
    if source.startswith(SAMPLE_PREFIX):
        pixels = _sample_pixels(source[len(SAMPLE_PREFIX):])
    elif source in PROVIDED_FILES:
        with Image.open(io.BytesIO(PROVIDED_FILES[source])) as img:
            img.load()
            pixels = _pixels_01(img)
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"image not found: expected an image file, got {source!r}"
                             f"{' (a folder)' if path.is_dir() else ''}. Built-in photos: "
                             f"{SAMPLE_PREFIX}chelsea, {SAMPLE_PREFIX}astronaut, ...")
        try:
            with Image.open(path) as img:
                img.load()
                pixels = _pixels_01(img)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"cannot read image {source!r}: expected a PNG/JPEG/... file "
                             f"Pillow can decode, but it is unreadable or corrupt ({exc})") from exc
    if min(pixels.shape[:2]) < 1:
        raise ImageError(f"image {source!r} is empty ({pixels.shape[1]}x{pixels.shape[0]})")
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).contiguous()


def fit_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the short side to ``size`` (antialiased) and centre-crop to ``size x size``.

    >>> fit_square(torch.rand(3, 300, 451), 128).shape
    torch.Size([3, 128, 128])
    """
    resized = TF.resize(image, [size], antialias=True)
    return TF.center_crop(resized, [size, size]).clamp(0, 1).contiguous()


def load_target(source: str | os.PathLike[str], size: int) -> torch.Tensor:
    """Read an image and bring it to the model's square input size (the file is never touched)."""
    return fit_square(read_image(source), size)


def to_pil(image: torch.Tensor) -> Image.Image:
    """A ``[3, H, W]`` tensor in [0, 1] as an 8-bit RGB Pillow image."""
    arr = image.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through a temporary file in the same folder, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_image(image: torch.Tensor, path: str | os.PathLike[str]) -> None:
    """Save a ``[3, H, W]`` tensor in [0, 1] as an image (format from the suffix), atomically."""
    fmt = Image.registered_extensions().get(Path(path).suffix.lower(), "PNG")
    pil = to_pil(image)
    _atomic_write(Path(path), lambda f: pil.save(f, format=fmt))


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a UTF-8 text file atomically."""
    _atomic_write(Path(path), lambda f: f.write(text.encode("utf-8")))


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write bytes atomically."""
    _atomic_write(Path(path), lambda f: f.write(data))


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON (indented, NaN-free where possible) atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def save_tensors(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """``torch.save`` atomically (checkpoints)."""
    _atomic_write(Path(path), lambda f: torch.save(data, f))
