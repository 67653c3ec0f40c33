"""Learning-rate schedules as pure functions of the step.

A schedule is written as a string, in configs and on the command line alike:

- ``constant``
- ``step:every=100,gamma=0.1``       multiply by gamma every ``every`` steps
- ``exp:final=0.01``                 smooth exponential decay to ``final`` x lr at the last step
- ``cosine:warmup=10,final=0``       linear warm-up, then cosine down to ``final`` x lr
- ``piecewise:800x1,500x0.1,500x0.01``  segments of ``steps x factor`` (the paper's /10 drops);
  the last factor holds after the last segment

``factor(step, total)`` gives the multiplier of the base learning rate at 0-based ``step``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import ConfigError, did_you_mean

KINDS = ("constant", "step", "exp", "cosine", "piecewise")
_DEFAULTS = {
    "step": {"every": 100.0, "gamma": 0.1},
    "exp": {"final": 0.01},
    "cosine": {"warmup": 0.0, "final": 0.0},
    "constant": {},
    "piecewise": {},
}


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule.

    >>> s = Schedule.parse("step:every=2,gamma=0.5")
    >>> [s.factor(i, 6) for i in range(6)]
    [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    >>> Schedule.parse("piecewise:2x1,1x0.1").factor(2, 10)
    0.1
    """

    kind: str = "constant"
    params: dict[str, float] = field(default_factory=dict)
    segments: tuple[tuple[int, float], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Schedule:
        kind, _, rest = str(text).strip().partition(":")
        kind = kind.strip().lower()
        if kind not in KINDS:
            raise ConfigError(
                f"unknown schedule {kind!r}: expected one of {', '.join(KINDS)} "
                f"(e.g. 'step:every=100,gamma=0.1').{did_you_mean(kind, KINDS)}"
            )
        if kind == "piecewise":
            return cls(kind, {}, _parse_segments(rest))
        params = dict(_DEFAULTS[kind])
        for item in filter(None, (p.strip() for p in rest.split(","))):
            key, eq, value = item.partition("=")
            if not eq or key.strip() not in _DEFAULTS[kind]:
                raise ConfigError(
                    f"bad schedule parameter {item!r} for {kind!r}: expected "
                    f"{', '.join(k + '=NUMBER' for k in _DEFAULTS[kind]) or 'none'}"
                )
            params[key.strip()] = _number(value, item)
        if kind == "step" and params["every"] < 1:
            raise ConfigError(f"schedule step: 'every' must be >= 1, got {params['every']}")
        return cls(kind, params)

    def __str__(self) -> str:
        if self.kind == "piecewise":
            return "piecewise:" + ",".join(f"{n}x{f:g}" for n, f in self.segments)
        args = ",".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{self.kind}:{args}" if args else self.kind

    def factor(self, step: int, total: int) -> float:
        """Multiplier of the base learning rate at 0-based ``step`` of ``total``."""
        p = self.params
        if self.kind == "constant":
            return 1.0
        if self.kind == "step":
            return p["gamma"] ** (step // int(p["every"]))
        if self.kind == "exp":
            return p["final"] ** (step / max(total - 1, 1))
        if self.kind == "cosine":
            warmup = int(p["warmup"])
            if step < warmup:
                return (step + 1) / warmup
            t = (step - warmup) / max(total - warmup - 1, 1)
            return p["final"] + (1 - p["final"]) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
        start = 0
        for length, factor in self.segments:
            if step < start + length:
                return factor
            start += length
        return self.segments[-1][1]

    def total_steps(self) -> int | None:
        """The number of steps a piecewise schedule spells out (None for the others)."""
        return sum(n for n, _ in self.segments) if self.segments else None


def _number(text: str, context: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"bad number {text!r} in schedule {context!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"schedule values must be finite and >= 0, got {text!r} in {context!r}")
    return value


def _parse_segments(text: str) -> tuple[tuple[int, float], ...]:
    segments = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        steps, x, factor = item.partition("x")
        if not x or not steps.strip().isdigit() or int(steps) < 1:
            raise ConfigError(f"bad piecewise segment {item!r}: expected STEPSxFACTOR like '500x0.1'")
        segments.append((int(steps), _number(factor, item)))
    if not segments:
        raise ConfigError("piecewise schedule needs segments, e.g. 'piecewise:800x1,500x0.1'")
    return tuple(segments)
