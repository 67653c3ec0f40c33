"""Make docs/chelsea_layers.png, the README's first figure: skimage's chelsea and its
reconstructions from the offline ImageNet VGG16 with featinv's defaults (128 px, 200 steps).

    python scripts/readme_figure.py            # prints each layer's PSNR for the caption
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

from PIL import Image, ImageDraw

import featinv
from featinv.files import to_pil, write_bytes
from featinv.models import load_model

LAYERS = ("relu1_2", "relu3_3", "relu4_3", "pool5")


def main(out: Path) -> None:
    model = load_model("vgg16_offline")
    results = [featinv.invert("skimage:chelsea", model=model, layers=layer, size=128, steps=200) for layer in LAYERS]
    cell = 128
    sheet = Image.new("RGB", (cell * (len(LAYERS) + 1), cell + 20), "white")
    draw = ImageDraw.Draw(sheet)
    sheet.paste(to_pil(results[0].target), (0, 20))
    draw.text((4, 4), "target", fill="black")
    for i, (layer, r) in enumerate(zip(LAYERS, results), start=1):
        sheet.paste(to_pil(r.image), (i * cell, 20))
        draw.text((i * cell + 4, 4), f"{layer} {r.summary['psnr']:.1f} dB", fill="black")
        print(f"{layer}: {r.summary['psnr']:.1f} dB, SSIM {r.summary['ssim']:.3f}, param {r.config.param}")
    buf = io.BytesIO()
    sheet.resize((sheet.width * 2, sheet.height * 2), Image.NEAREST).save(buf, format="PNG")
    write_bytes(out, buf.getvalue())


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "docs" / "chelsea_layers.png")
