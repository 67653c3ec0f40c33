"""Make docs/layers.png, the README's first figure: three photos -- chelsea, which the defaults
were tuned on, and sklearn's china and flower, which were never looked at while choosing them --
and their reconstructions from the offline ImageNet VGG16 with featinv's defaults (128 px, 200
steps), one row a photo.

    python scripts/readme_figure.py            # prints each reconstruction's PSNR for the caption
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from PIL import Image, ImageDraw

from featinv.config import from_dict
from featinv.files import to_pil, write_bytes
from featinv.nets.models import load_model
from featinv.optim.inversion import Inversion

PHOTOS = ("skimage:chelsea", "sklearn:china", "sklearn:flower")
LAYERS = ("relu1_2", "relu3_3", "relu4_3", "pool5")


def main(out: Path) -> None:
    model = load_model("vgg16_offline")
    by_layer = {}
    for layer in LAYERS:  # the photos of one layer run as one batch
        configs = [
            from_dict({"image": photo, "layers": layer, "size": 128, "steps": 200, "snapshot_every": 0})
            for photo in PHOTOS
        ]
        by_layer[layer] = Inversion(configs, model).run_all()
    cell, label = 128, 20
    sheet = Image.new("RGB", (cell * (len(LAYERS) + 1), (cell + label) * len(PHOTOS)), "white")
    draw = ImageDraw.Draw(sheet)
    for row, photo in enumerate(PHOTOS):
        top = row * (cell + label)
        sheet.paste(to_pil(by_layer[LAYERS[0]][row].target), (0, top + label))
        draw.text((4, top + 4), photo, fill="black")
        for col, layer in enumerate(LAYERS, start=1):
            r = by_layer[layer][row]
            sheet.paste(to_pil(r.image), (col * cell, top + label))
            draw.text((col * cell + 4, top + 4), f"{layer} {r.summary['psnr']:.1f} dB", fill="black")
            print(f"{photo} {layer}: {r.summary['psnr']:.1f} dB, SSIM {r.summary['ssim']:.3f}, param {r.config.param}")
    buf = io.BytesIO()
    sheet.resize((sheet.width * 2, sheet.height * 2), Image.NEAREST).save(buf, format="PNG")
    write_bytes(out, buf.getvalue())


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "docs" / "layers.png")
