import numpy as np
import pytest
import torch
from PIL import Image

from featinv.errors import ImageError
from featinv.files import load_target, read_image, save_image, write_text


def test_sample_photo():
    x = read_image("skimage:chelsea")
    assert x.shape == (3, 300, 451) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    with pytest.raises(ImageError, match="chelsea"):
        read_image("skimage:chelsee")


def test_built_in_photos_beyond_skimage_s_own_names():
    """The benchmark's other photos: the left view of skimage's stereo pair, matplotlib's sample."""
    left = read_image("skimage:motorcycle")
    assert left.shape == (3, 500, 741) and left.std() > 0.1
    hopper = read_image("matplotlib:grace_hopper")
    assert hopper.shape == (3, 600, 512) and (hopper[0] - hopper[2]).abs().mean() > 0.02  # a colour photo
    with pytest.raises(ImageError, match="expected one of matplotlib:grace_hopper. Did you mean 'grace_hopper'"):
        read_image("matplotlib:grace_hoper")
    assert read_image("sklearn:flower").shape == (3, 427, 640)


def test_grey_rgba_palette_and_16_bit_are_converted(tmp_path):
    Image.new("L", (4, 3), 128).save(tmp_path / "grey.png")
    Image.new("RGBA", (4, 3), (255, 0, 0, 0)).save(tmp_path / "clear.png")  # fully transparent
    Image.new("P", (4, 3), 0).save(tmp_path / "palette.png")
    Image.fromarray(np.full((3, 4), 65535, dtype=np.uint16)).save(tmp_path / "deep.png")
    grey, clear, palette, deep = (
        read_image(tmp_path / n) for n in ("grey.png", "clear.png", "palette.png", "deep.png")
    )
    assert grey.shape == (3, 3, 4) and torch.allclose(grey, torch.full_like(grey, 128 / 255))
    assert torch.allclose(clear, torch.ones_like(clear))  # transparent -> white
    assert palette.shape == (3, 3, 4)
    assert torch.allclose(deep, torch.ones_like(deep))  # 16-bit full scale -> 1.0, not clipped


def test_missing_corrupt_and_folder_inputs_are_clear_errors(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not really a jpeg")
    with pytest.raises(ImageError, match="not found"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="unreadable or corrupt"):
        read_image(tmp_path / "bad.jpg")
    with pytest.raises(ImageError, match="a folder"):
        read_image(tmp_path)


def test_huge_image_is_resized_and_the_file_untouched(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("RGB", (6000, 4000), (10, 200, 30)).save(path)
    before = path.read_bytes()
    x = load_target(path, 64)
    assert x.shape == (3, 64, 64) and abs(x[1].mean().item() - 200 / 255) < 1e-3
    assert path.read_bytes() == before


def test_save_roundtrip_is_atomic(tmp_path):
    x = torch.rand(3, 8, 8)
    save_image(x, tmp_path / "a" / "x.png")
    assert torch.allclose(read_image(tmp_path / "a" / "x.png"), x, atol=1 / 255)
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["x.png"]  # no temporary left


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "f.txt"
    write_text(path, "old")
    monkeypatch.setattr("os.replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        write_text(path, "new")
    assert path.read_text() == "old" and len(list(tmp_path.iterdir())) == 1


def test_json_is_strict_with_nan_and_infinity_as_null(tmp_path):
    """summary.json of a diverged run has NaN losses: strict readers (JSON.parse, jq) must read it."""
    import json

    from featinv.files import write_json

    write_json(
        tmp_path / "s.json",
        {"psnr": float("nan"), "losses": [1.5, float("inf"), -float("inf")], "nested": {"x": (float("nan"),)}},
    )
    text = (tmp_path / "s.json").read_text()

    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    data = json.loads(text, parse_constant=refuse)
    assert data == {"psnr": None, "losses": [1.5, None, None], "nested": {"x": [None]}}


def test_images_in_memory_as_a_notebook_holds_them():
    rgb = np.zeros((4, 6, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    expected = torch.zeros(3, 4, 6)
    expected[0] = 1
    pil = Image.fromarray(rgb)
    for source in (
        pil,
        rgb,
        rgb.astype(np.float32) / 255,
        torch.from_numpy(rgb).permute(2, 0, 1),
        expected,
        expected[None],
        expected.double(),
    ):
        assert torch.allclose(read_image(source), expected), type(source)
    grey = read_image(np.full((4, 6), 0.25))
    assert grey.shape == (3, 4, 6) and torch.allclose(grey, torch.full_like(grey, 0.25))
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)  # transparent black -> white, as for files
    assert torch.allclose(read_image(rgba), torch.ones(3, 2, 2))
    assert torch.allclose(read_image(np.full((3, 3), 65535, dtype=np.uint16)), torch.ones(3, 3, 3))


def test_images_in_memory_refused_clearly():
    cases = [
        (np.full((4, 4, 3), 200.0), "in \\[0, 1\\].*divide 0-255 pixels by 255"),
        (np.zeros((3, 5, 6), dtype=np.uint8), "channels last"),
        (torch.zeros(5, 6, 3), r"\[3, H, W\]"),
        (np.zeros((4, 4, 3), dtype=np.int64), "uint8, uint16 or float"),
        (torch.full((3, 4, 4), float("nan")), r"in \[0, 1\]"),
        ([[0.0]], "a Pillow image, a numpy array or a torch tensor, got list"),
        (np.zeros((0, 4, 3)), "empty"),
    ]
    for source, message in cases:
        with pytest.raises(ImageError, match=message):
            read_image(source)


def test_an_image_over_pillows_limit_is_a_clear_error(tmp_path, monkeypatch):
    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10,000 pixels is more than twice the limit
    with pytest.raises(ImageError, match="MAX_IMAGE_PIXELS"):
        read_image(tmp_path / "big.png")
