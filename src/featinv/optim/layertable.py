"""A network's layers as a user chooses among them: alias, graph node, output shape at the run's
input size, stride, and the defaults a run at that layer gets (parameterisation, lr, TV weight).
``featinv layers MODEL`` prints it; ``featinv.layers(MODEL)`` returns it (a table in a notebook).

>>> table = layer_table(load_model("resnet18", "none"), size=64)
>>> row = table.row("res2")
>>> row.shape, row.stride, row.param, row.lr, row.tv
((64, 16, 16), 4, 'pyramid', 0.05, 0.5)
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from ..config import InvertConfig
from ..errors import ConfigError
from ..nets.layers import aliases, describe, stride_of
from ..nets.models import LoadedModel, load_model  # noqa: F401 - load_model: the doctest's
from .defaults import resolve_defaults


@dataclass(frozen=True)
class LayerRow:
    name: str  # an alias, or the graph node's own name
    node: str
    shape: tuple[int, ...] | None  # without the batch; None for a node without a tensor output
    stride: int | None = None
    param: str | None = None
    lr: float | None = None
    tv: float | None = None


@dataclass(frozen=True)
class LayerTable:
    """The rows, aliases first; ``str()`` is the command's listing, ``_repr_html_`` a table."""

    label: str
    size: int
    rows: tuple[LayerRow, ...]
    aliases: int  # how many of the rows are aliases
    nodes_hidden: bool  # True when only invertible nodes (or only aliases) are listed

    def row(self, name: str) -> LayerRow:
        return next(r for r in self.rows if r.name == name)

    def _cells(self, r: LayerRow) -> list[str]:
        shape = "x".join(map(str, r.shape)) if r.shape else "-"
        if r.stride is None:
            return [r.name, r.node, shape, "", "", "", ""]
        return [r.name, r.node, shape, f"stride {r.stride}", str(r.param), f"lr {r.lr:g}", f"tv {r.tv:g}"]

    def header(self) -> str:
        nodes = len(self.rows) - self.aliases
        listed = (
            f"{self.aliases} aliases (--all adds every graph node)"
            if self.nodes_hidden and self.aliases
            else f"{self.aliases} aliases, {nodes} {'invertible ' if self.nodes_hidden else ''}graph nodes"
        )
        return (
            f"# {self.label}: {listed}; output shapes for a {self.size}x{self.size} input, the stride "
            "and the defaults a run there gets"
        )

    def __str__(self) -> str:
        cells = [self._cells(r) for r in self.rows]
        widths = [max(len(c[i]) for c in cells) for i in range(7)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
        return "\n".join([self.header(), *lines])

    def __repr__(self) -> str:
        return f"<LayerTable {self.label}: {len(self.rows)} layers at {self.size} px>"

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in ("layer", "node", "shape", "stride", "param", "lr", "tv"))
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in self._cells(r)) + "</tr>" for r in self.rows
        )
        return f"<p>{html.escape(self.header())}</p><table><tr>{head}</tr>{body}</table>"


def layer_table(model: LoadedModel, size: int = InvertConfig.size, everything: bool = False) -> LayerTable:
    """Every alias of ``model`` (and its invertible nodes, or every node with ``everything``) at
    ``size`` px, with each layer's stride and the defaults :func:`resolve_defaults` gives it."""
    rows = []
    names = aliases(model.module)
    only_aliases = bool(names) and not everything
    try:
        listed = describe(model.module, size, everything=everything, nodes_too=not only_aliases)
    except (RuntimeError, ValueError, IndexError, AssertionError) as exc:  # what sizing.refusal names
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ConfigError(f"{model.label} does not take a {size}x{size} input: {reason}") from None
    shown_aliases = len(listed) if only_aliases else len(names)
    for name, node, shape in listed:
        if not shape:
            rows.append(LayerRow(name, node, shape))
            continue
        stride = stride_of(size, [(1, *shape)])
        chosen = resolve_defaults(InvertConfig(layers=(name,), size=size), stride)
        rows.append(LayerRow(name, node, shape, stride, chosen.param, chosen.lr, chosen.tv))
    return LayerTable(model.label, size, tuple(rows), shown_aliases, not everything)
