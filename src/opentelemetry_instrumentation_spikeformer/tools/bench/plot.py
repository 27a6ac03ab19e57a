"""Accuracy vs. energy per inference across timesteps, and synaptic operations
vs. timesteps, as a PNG (matplotlib, Agg).

One panel per model (rows) and energy target (columns): per framework a line
through the timesteps values (labelled T=...), the source ANN as a star and a
dotted line at its accuracy. Energy on a log axis: doubling T roughly doubles
the spikes, so the points spread evenly. A last column per model: SOPs per
inference against T, per framework (log-log).
"""

from __future__ import annotations

from typing import Any

from . import metrics as bm
from .runner import BenchResult

_STYLE = {"sinabs": ("tab:blue", "o"), "spikingjelly": ("tab:orange", "s"),
          "spikingjelly_sta": ("tab:purple", "D"), "spikingjelly_td": ("tab:brown", "v")}
_ANN_COLOR = "black"


def write_plot(result: BenchResult, path: str, dpi: int = 80) -> str:
    """Write the figure to ``path``; returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    cfg = result.config
    models, targets = list(cfg.models), list(cfg.targets)
    fig, axes = plt.subplots(len(models), len(targets) + 1, squeeze=False,
                             figsize=(4.6 * (len(targets) + 1), 3.2 * len(models) + 0.6))
    for r, model in enumerate(models):
        for c, target in enumerate(targets):
            ax = axes[r][c]
            _ann(ax, result, model, target)
            drawn = [_snn_line(ax, result, model, framework, target)
                     for framework in _frameworks(result, model)]
            if not any(drawn):
                _no_counts(ax)
            _log_x(ax, ticker)
            ax.margins(x=0.1)
            ax.set_title(f"{model}, energy table {target}", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
            if r == len(models) - 1:
                ax.set_xlabel("estimated energy per inference (µJ)")
            if c == 0:
                ax.set_ylabel("test accuracy (%)")
        ax = axes[r][len(targets)]
        if not any([_synops_line(ax, result, model, framework)
                    for framework in _frameworks(result, model)]):
            _no_counts(ax)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.set_yscale("log")
        ax.set_title(f"{model}, SOPs per inference", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        if r == len(models) - 1:
            ax.set_xlabel("timesteps T")
    for r, model in enumerate(models):
        accuracies = [row.accuracy * 100 for row in result.rows
                      if row.model == model and row.accuracy is not None]
        if accuracies:  # room for the T=... labels above and below the points
            for ax in axes[r][:len(targets)]:
                ax.set_ylim(min(accuracies) - 1.0, max(accuracies) + 0.8)
    handles, labels = [], []
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=9,
                   frameon=False)
    fig.suptitle(f"Accuracy vs. energy per inference, and SOPs, across timesteps "
                 f"({result.test_samples} test digits, run on {cfg.device})", fontsize=11)
    height = fig.get_figheight()  # inches: room for the legend and the title
    fig.tight_layout(rect=(0, 0.55 / height, 1, 1 - 0.35 / height))
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _log_x(ax: Any, ticker: Any) -> None:
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())


def _frameworks(result: BenchResult, model: str) -> list[str]:
    """Frameworks with SNN rows of ``model``, in the configured order."""
    found = {row.framework for row in result.rows
             if row.model == model and row.network == bm.NETWORK_SNN}
    return [f for f in dict.fromkeys((*result.config.frameworks, *sorted(found))) if f in found]


def _label(result: BenchResult, model: str, framework: str) -> str:
    direct = not any(row.model == model and row.network == bm.NETWORK_ANN for row in result.rows)
    return f"SNN, {framework}" + (" (trained directly)" if direct else "")


def _no_counts(ax: Any) -> None:
    """A panel whose SNN rows have no spike counts (the monitor found no spiking layer)."""
    ax.text(0.5, 0.5, "no spike counts for these SNNs", transform=ax.transAxes,
            ha="center", va="center", fontsize=9, color="gray")


def _synops_line(ax: Any, result: BenchResult, model: str, framework: str) -> bool:
    points = sorted((row.timesteps, row.synops) for row in result.rows
                    if row.model == model and row.framework == framework and not row.error
                    and row.synops)
    if points:
        color, marker = _STYLE.get(framework, ("tab:green", "^"))
        ax.plot([t for t, _ in points], [n for _, n in points], marker=marker, color=color,
                label=_label(result, model, framework))
    return bool(points)


def _ann(ax: Any, result: BenchResult, model: str, target: str) -> None:
    for row in result.rows:
        if row.model == model and row.network == bm.NETWORK_ANN and not row.error:
            ax.axhline(row.accuracy * 100, color=_ANN_COLOR, linestyle=":", linewidth=1)
            energy = row.energy_mj.get(target)
            if energy:
                ax.plot([energy * 1e3], [row.accuracy * 100], marker="*", markersize=13,
                        color=_ANN_COLOR, linestyle="none", label="ANN (source)")


def _snn_line(ax: Any, result: BenchResult, model: str, framework: str, target: str) -> bool:
    points = sorted((row.timesteps, row.energy_mj.get(target), row.accuracy)
                    for row in result.rows
                    if row.model == model and row.framework == framework and not row.error
                    and row.energy_mj.get(target))
    if not points:
        return False
    color, marker = _STYLE.get(framework, ("tab:green", "^"))
    xs = [energy * 1e3 for _, energy, _ in points]
    ys = [accuracy * 100 for _, _, accuracy in points]
    ax.plot(xs, ys, marker=marker, color=color, label=_label(result, model, framework))
    below = framework != "sinabs"
    for (steps, _, _), x, y in zip(points, xs, ys):
        ax.annotate(f"T={steps}", (x, y), textcoords="offset points", fontsize=7, color=color,
                    xytext=(0, -12 if below else 6), ha="center")
    return True
