"""Drawings of a network's structure: its layer aliases with output shapes, inverted ones highlighted
(like the seed study's figures 8-9). ``featinv layers MODEL --plot FILE.png`` draws one alone."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn


def structure_png(model: nn.Module, title: str, size: int = 224, highlight: Sequence[str] = ()) -> bytes:
    """A PNG of the model's aliases in order, as boxes with their output shapes.

    Boxes flow left to right in rows; highlighted layers (the inverted ones) are filled orange.
    """
    import io

    from matplotlib.figure import Figure  # outside pyplot: the host's backend stays as it is
    from matplotlib.patches import FancyBboxPatch

    from ..nets.layers import aliases, describe

    names = set(aliases(model))
    every = describe(model, size, everything=False)
    rows = [r for r in every if r[0] in names][: len(names)] or every[:40]
    wanted = {h.split(":")[0] for h in highlight}
    per_row = 8
    n_rows = math.ceil(len(rows) / per_row)
    fig = Figure(figsize=(per_row * 1.45, 0.95 * n_rows + 0.7))
    ax = fig.subplots()
    for i, (name, node, shape) in enumerate(rows):
        x, y = i % per_row, n_rows - 1 - i // per_row
        hit = name in wanted or node in wanted
        ax.add_patch(
            FancyBboxPatch(
                (x * 1.4, y),
                1.2,
                0.7,
                boxstyle="round,pad=0.02",
                facecolor="#f39c12" if hit else "#dfe8f3",
                edgecolor="#c0392b" if hit else "#7f8c9d",
                linewidth=2 if hit else 1,
            )
        )
        ax.text(
            x * 1.4 + 0.6, y + 0.45, name, ha="center", va="center", fontsize=8, fontweight="bold" if hit else "normal"
        )
        ax.text(x * 1.4 + 0.6, y + 0.2, "×".join(map(str, shape or ())), ha="center", va="center", fontsize=6.5)
        if i % per_row != per_row - 1 and i + 1 < len(rows):
            ax.annotate(
                "",
                (x * 1.4 + 1.4, y + 0.35),
                (x * 1.4 + 1.2, y + 0.35),
                arrowprops={"arrowstyle": "->", "color": "#555"},
            )
    ax.set_xlim(-0.1, per_row * 1.4)
    ax.set_ylim(-0.2, n_rows)
    ax.axis("off")
    ax.set_title(
        f"{title} — output shapes for a {size}×{size} input"
        + (f"; inverted: {', '.join(sorted(wanted))}" if wanted else ""),
        fontsize=9,
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()
