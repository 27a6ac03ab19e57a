"""The table a one-shot run prints (and a periodic run prints after each run)."""

from __future__ import annotations

import textwrap
from typing import Callable

from .runner import BenchResult, Row

DASH = "-"


def _pct(value: float | None) -> str:
    return DASH if value is None else f"{value * 100:.1f}%"


def _drop(value: float | None) -> str:
    return DASH if value is None else f"{value * 100:+.1f} pp"


def _ms(value: float | None) -> str:
    return DASH if value is None else f"{value * 1e3:.3g} ms"


def _rate(value: float | None) -> str:
    return DASH if value is None else f"{value:,.0f}/s"


def _count(value: float | None) -> str:
    return DASH if value is None else f"{value:,.0f}"


def _uj(value: float | None) -> str:
    return DASH if value is None else f"{value * 1e3:.3g}"  # mJ -> uJ


# header, cell, right-aligned
_COLUMNS: tuple[tuple[str, Callable[[Row], str], bool], ...] = (
    ("model", lambda r: r.model, False),
    ("framework", lambda r: r.framework + (" (ANN)" if r.network == "ann" else ""), False),
    ("T", lambda r: DASH if r.timesteps is None else str(r.timesteps), True),
    ("accuracy", lambda r: _pct(r.accuracy), True),
    ("drop", lambda r: _drop(r.accuracy_drop), True),
    ("p50 latency", lambda r: _ms(r.latency_p50), True),
    ("p95 latency", lambda r: _ms(r.latency_p95), True),
    ("throughput", lambda r: _rate(r.throughput), True),
    ("sparsity", lambda r: _pct(r.sparsity), True),
    ("SOPs/inf", lambda r: _count(r.synops), True),
)


def render_table(result: BenchResult) -> str:
    cfg = result.config
    columns: list[tuple[str, Callable[[Row], str], bool]] = list(_COLUMNS)
    for target in cfg.targets:
        columns.append((f"uJ {target}", lambda r, t=target: _uj(r.energy_mj.get(t)), True))
    ok = [row for row in result.rows if not row.error]
    cells = [[cell(row) for _, cell, _ in columns] for row in ok]
    widths = [max([len(h)] + [len(line[i]) for line in cells]) for i, (h, _, _) in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if right else v.ljust(w)
                         for v, w, (_, _, right) in zip(values, widths, columns)).rstrip()

    device = ok[0].device if ok else cfg.device
    out = [f"Benchmark run {result.run}: {', '.join(cfg.models)} x {', '.join(cfg.frameworks)}"
           f" x T={','.join(map(str, cfg.timesteps))} on {device}, {result.seconds:.1f} s",
           line([h for h, _, _ in columns])]
    out.extend(line(values) for values in cells)
    for row in result.errors:
        out.append(f"FAILED {row.model} {row.framework}: {row.error}")
    out.append(_footnote(result))
    return "\n".join(out)


def _footnote(result: BenchResult) -> str:
    cfg = result.config
    return textwrap.fill(
        f"accuracy: {result.test_samples} test digits; drop: ANN - SNN in percentage points "
        "(none for an SNN trained directly); "
        f"latency: one sample, {cfg.latency_samples} timed; throughput: batches of "
        f"{cfg.batch_size}; sparsity: fraction of possible spikes not fired; SOPs/inf: "
        "synaptic operations per inference (the spike monitor's count); uJ: estimated "
        "energy per inference under each target's energy table (an estimate, not a "
        "measurement)", width=100)
