"""Reading and writing images and run files. The only module that touches image files.

Images live in memory as float tensors ``[3, H, W]`` in RGB ``[0, 1]``. Every write is atomic:
the data goes to a temporary file in the same folder, which is then renamed over the target,
so an interrupted write never leaves a half-written file behind.

What a notebook holds is read too (:data:`ImageSource`): a Pillow image; a numpy array laid out as
Pillow, matplotlib and scikit-image do, ``[H, W]``, ``[H, W, 3]`` or ``[H, W, 4]``; a tensor laid out
as torchvision does, ``[3, H, W]``, ``[1, H, W]``, ``[H, W]`` or ``[1, 3, H, W]``. Integer pixels are
8-bit (0-255) or 16-bit (0-65535); float pixels must lie in [0, 1]. Anything else is an
:class:`~featinv.errors.ImageError` that says what was expected.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.v2 import functional as TF

from .errors import ImageError, did_you_mean
from .specs import MATPLOTLIB_IMAGES, SAMPLE_IMAGES, SAMPLE_PREFIX, SAMPLES, SKLEARN_IMAGES  # noqa: F401 (re-exported)

ImageSource = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor


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


def sample_name(source: str) -> str | None:
    """The NAME of a built-in photo (``skimage:NAME``, ``matplotlib:NAME``, ``sklearn:NAME``),
    None for anything else.

    >>> sample_name("skimage:coffee"), sample_name("matplotlib:grace_hopper"), sample_name("a.png")
    ('coffee', 'grace_hopper', None)
    """
    prefix = next((p for p in SAMPLES if source.startswith(p)), None)
    return source[len(prefix) :] if prefix else None


def _sample_array(prefix: str, name: str) -> np.ndarray:
    """A built-in photo as the package gives it (packages imported late: only samples need them)."""
    if prefix == "matplotlib:":
        import matplotlib.cbook

        with Image.open(matplotlib.cbook.get_sample_data(f"{name}.jpg", asfileobj=False)) as img:
            return np.asarray(img.convert("RGB"))
    if prefix == "sklearn:":
        try:
            from sklearn.datasets import load_sample_image
        except ImportError:
            from .install import install_hint

            raise ImageError(f"sklearn:{name} ships with scikit-learn: {install_hint('scikit-learn')}") from None
        return load_sample_image(f"{name}.jpg")
    import skimage.data

    return skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()


def _sample_pixels(source: str) -> np.ndarray:
    prefix = next(p for p in SAMPLES if source.startswith(p))
    name, names = source[len(prefix) :], SAMPLES[prefix]
    if name not in names:
        raise ImageError(
            f"unknown sample image {source!r}: expected one of "
            f"{', '.join(prefix + n for n in names)}.{did_you_mean(name, names)}"
        )
    return _pixels_01(Image.fromarray(_sample_array(prefix, name)))


def safe_name(text: str, keep: str = "-_=+.,", limit: int = 150) -> str:
    """``text`` as a file or folder name: letters, digits and ``keep`` stay, the rest become '-'.

    >>> safe_name("lr=0.01_layers=conv1_1:0.5/pool5")
    'lr=0.01_layers=conv1_1-0.5-pool5'
    """
    return "".join(c if c.isalnum() or c in keep else "-" for c in text)[:limit]


def in_memory(source: object) -> bool:
    """Is ``source`` an image object (Pillow, numpy, torch) rather than a path or sample name?"""
    return not isinstance(source, (str, os.PathLike))


def _memory_pixels(source: object) -> np.ndarray:
    """An in-memory image as float32 RGB ``[H, W, 3]`` in [0, 1] (layouts: the module docstring)."""
    if isinstance(source, Image.Image):
        return _pixels_01(source)
    if isinstance(source, torch.Tensor):
        t = source.detach().cpu()
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if not (t.dim() == 2 or (t.dim() == 3 and t.shape[0] in (1, 3, 4))):
            raise ImageError(
                f"expected an image tensor [3, H, W], [1, H, W], [H, W] or [1, 3, H, W], got shape {list(source.shape)}"
            )
        arr = (t.permute(1, 2, 0) if t.dim() == 3 else t).numpy()
    elif isinstance(source, np.ndarray):
        arr = source
        if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4))):
            raise ImageError(
                f"expected an image array [H, W], [H, W, 3] or [H, W, 4] (channels last, as "
                f"Pillow and scikit-image give), got shape {list(arr.shape)}"
            )
    else:
        raise ImageError(
            f"expected an image: a file path, skimage:NAME, a Pillow image, a numpy array or "
            f"a torch tensor, got {type(source).__name__}"
        )
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if min(arr.shape[:2]) < 1:
        raise ImageError(f"the image is empty (shape {list(arr.shape)})")
    if arr.dtype == np.uint8 or arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / (255.0 if arr.dtype == np.uint8 else 65535.0)
    elif arr.dtype.kind == "f":
        arr = arr.astype(np.float32)
        low, high = float(arr.min()), float(arr.max())  # NaN if any is NaN
        if not (math.isfinite(low) and math.isfinite(high)) or low < -1e-3 or high > 1 + 1e-3:
            raise ImageError(
                f"expected float pixels in [0, 1], got values from {low:.4g} to {high:.4g}"
                + (" (divide 0-255 pixels by 255)" if high > 1.5 else "")
            )
        arr = arr.clip(0, 1)
    else:
        raise ImageError(f"expected uint8, uint16 or float pixels, got {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif arr.shape[2] == 4:  # transparent pixels on white, as for files
        alpha = arr[..., 3:]
        arr = arr[..., :3] * alpha + (1 - alpha)
    return np.ascontiguousarray(arr)


def describe(source: ImageSource) -> str:
    """The name an image goes by in a config: a path as given; an in-memory image by its kind, size
    and a digest of its pixels (so a resumed run can tell it is the same image).

    >>> describe(torch.zeros(3, 4, 5))
    '<tensor 5x4 #2dfba633>'
    """
    if not in_memory(source):
        return str(source)
    pixels = _memory_pixels(source)
    digest = hashlib.sha256(pixels.tobytes()).hexdigest()[:8]
    kind = "PIL image" if isinstance(source, Image.Image) else "array" if isinstance(source, np.ndarray) else "tensor"
    return f"<{kind} {pixels.shape[1]}x{pixels.shape[0]} #{digest}>"


def read_image(source: ImageSource, provided: Mapping[str, bytes | torch.Tensor] | None = None) -> torch.Tensor:
    """Read an image file, ``skimage:NAME`` or in-memory image as an RGB ``[3, H, W]`` float tensor
    in [0, 1]. ``provided`` maps names to files' bytes or to images already read (a sweep worker
    without the driver's disk; an in-memory image passed to :func:`featinv.invert`).

    >>> read_image("skimage:chelsea").shape
    torch.Size([3, 300, 451])
    >>> read_image(np.zeros((4, 5, 3), dtype=np.uint8)).shape
    torch.Size([3, 4, 5])
    """
    if in_memory(source):
        pixels = _memory_pixels(source)
        return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
    source = str(source)
    given = (provided or {}).get(source)
    if isinstance(given, torch.Tensor):
        return given
    if sample_name(source) is not None:
        pixels = _sample_pixels(source)
    elif given is not None:
        with Image.open(io.BytesIO(given)) as img:
            img.load()
            pixels = _pixels_01(img)
    elif source.startswith("<") and source.endswith(">"):
        raise ImageError(
            f"{source} was an image in memory, passed from Python: pass it again "
            f"(featinv.invert(image, out=..., resume=True) resumes a run of it)"
        )
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageError(
                f"image not found: expected an image file, got {source!r}"
                f"{' (a folder)' if path.is_dir() else ''}. Built-in photos: "
                f"{SAMPLE_PREFIX}chelsea, {SAMPLE_PREFIX}astronaut, ..."
            )
        try:
            with Image.open(path) as img:
                img.load()
                pixels = _pixels_01(img)
        except Image.DecompressionBombError as exc:
            raise ImageError(
                f"cannot read image {source!r}: {exc} Pillow refuses images that large unless "
                f"PIL.Image.MAX_IMAGE_PIXELS is raised (the featinv CLI raises it to 400 "
                f"megapixels: see featinv.nets.perf.tune_process)"
            ) from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise ImageError(
                f"cannot read image {source!r}: expected a PNG/JPEG/... file "
                f"Pillow can decode, but it is unreadable or corrupt ({exc})"
            ) from exc
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


def load_target(
    source: ImageSource, size: int, provided: Mapping[str, bytes | torch.Tensor] | None = None
) -> torch.Tensor:
    """Read an image and bring it to the model's square input size (the file is never touched)."""
    return fit_square(read_image(source, provided), size)


def to_pil(image: torch.Tensor) -> Image.Image:
    """A ``[3, H, W]`` tensor in [0, 1] as an 8-bit RGB Pillow image."""
    arr = image.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
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


def finite_json(data: Any) -> Any:
    """``data`` with every NaN or infinity replaced by None (JSON has no such numbers).

    >>> finite_json({"psnr": float("nan"), "losses": [1.0, float("inf")]})
    {'psnr': None, 'losses': [1.0, None]}
    """
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite_json(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_json(v) for v in data]
    return data


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write strict JSON atomically, indented; NaN and infinities are written as null."""
    text = json.dumps(finite_json(data), indent=2, sort_keys=False, default=str, allow_nan=False)
    write_text(path, text + "\n")


def save_tensors(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """``torch.save`` atomically (checkpoints)."""
    _atomic_write(Path(path), lambda f: torch.save(data, f))
