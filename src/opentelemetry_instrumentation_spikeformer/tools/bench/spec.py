"""What a benchmark run covers: models x frameworks x energy targets x timesteps.

Every dimension is a short configured list, so every metric attribute stays
bounded. Unknown names are dropped with one warning each (an empty dimension
falls back to its default), never an exception. A model is converted by the
selected frameworks that accept it; a model trained directly as an SNN is run
by its own library.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from ...core import settings as config
from .. import digits
from .. import digits_transformers as dt
from . import metrics as bm

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Framework:
    """How one library (and recipe) converts an ANN and runs the result for T timesteps."""

    name: str
    convert: Callable[[Any, Any, int], Any]  # (ann copy, data, timesteps) -> snn
    run: Callable[[Any, Any, int], Any]  # (snn, x, timesteps) -> summed outputs
    per_timesteps: bool = False  # converted once per T (calibrated for it), else once
    library: str = ""  # the package it needs, when not ``name``

    @property
    def package(self) -> str:
        return self.library or self.name


FRAMEWORKS: dict[str, Framework] = {
    f.name: f for f in (
        # one conversion serves every T: run_sinabs sets num_timesteps per call
        Framework("sinabs", lambda ann, _data, t: digits.convert_sinabs(ann, t), digits.run_sinabs),
        Framework("spikingjelly", lambda ann, data, _t: digits.convert_spikingjelly(ann, data),
                  digits.run_spikingjelly),
        Framework("spikingjelly_sta", dt.convert_sta, dt.run_converted, per_timesteps=True,
                  library="spikingjelly"),
        Framework("spikingjelly_td", dt.convert_td, dt.run_converted, library="spikingjelly"),
    )
}


@dataclass(frozen=True)
class Model:
    """A bundled network: how to build and train it, its input side, and either
    the frameworks that convert it or (``library``) the one it is an SNN of."""

    build: Callable[[int], Any]  # seed -> module
    frameworks: tuple[str, ...] = ()
    library: str = ""  # trained directly as an SNN of this library: no ANN, no conversion
    run: Callable[[Any, Any, int], Any] | None = None  # (snn, x, timesteps), library models
    image_size: int = 8
    lr: float = 3e-3
    batch_size: int = 64


_CNN_FRAMEWORKS = ("sinabs", "spikingjelly")
_TRANSFORMER = dict(image_size=dt.IMAGE_SIZE)
# Model name (a bounded metric attribute value) -> how to make it.
MODELS: dict[str, Model] = {
    "digits_cnn": Model(digits.build_cnn, _CNN_FRAMEWORKS),
    "digits_mlp": Model(digits.build_mlp, _CNN_FRAMEWORKS),
    "digits_vit": Model(dt.build_vit, ("spikingjelly_sta", "spikingjelly_td"), lr=1e-2,
                        batch_size=128, **_TRANSFORMER),
    "digits_spikformer": Model(dt.build_spikformer, library="spikingjelly", run=dt.run_direct,
                               batch_size=32, **_TRANSFORMER),
    "digits_sdt": Model(dt.build_sdt, library="spikingjelly", run=dt.run_direct, batch_size=32,
                        **_TRANSFORMER),
}


def _default(name: str):
    return field(default_factory=lambda: config.option(name).default)


@dataclass(frozen=True)
class BenchConfig:
    models: tuple[str, ...] = _default("bench_models")
    frameworks: tuple[str, ...] = _default("bench_frameworks")
    targets: tuple[str, ...] = _default("bench_targets")  # energy table names
    timesteps: tuple[int, ...] = _default("bench_timesteps")
    epochs: int = 15  # training of each ANN
    snn_epochs: int = 3  # training of each directly trained SNN (slower per epoch)
    seed: int = 0
    latency_samples: int = 50  # single-sample inferences timed per row
    batch_size: int = 128
    min_throughput_s: float = 0.2  # repeat the batched test-set pass at least this long
    device: str = "cpu"
    cache_dir: str | None = None  # trained weights are saved and loaded here
    energy_table: str = ""  # OTEL_PYTHON_SPIKEFORMER_ENERGY_TABLE overrides

    @classmethod
    def from_settings(cls, settings: config.Settings | None = None, **overrides: Any) -> "BenchConfig":
        """Dimensions from the ``OTEL_PYTHON_SPIKEFORMER_BENCH_*`` settings, then ``overrides``."""
        settings = settings or config.load_settings()
        values = {
            "models": settings.bench_models, "frameworks": settings.bench_frameworks,
            "targets": settings.bench_targets, "timesteps": settings.bench_timesteps,
            "energy_table": settings.energy_table,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def resolved(self) -> "BenchConfig":
        """Known names only (one warning per unknown one); timesteps capped."""
        from ...monitor import energy

        models = _known("model", self.models, MODELS, "bench_models")
        frameworks = _known("framework", self.frameworks, FRAMEWORKS, "bench_frameworks")
        tables = energy.tables(self.energy_table)
        targets = _known("energy target", tuple(t.lower() for t in self.targets), tables,
                         "bench_targets")
        timesteps = tuple(sorted({int(t) for t in self.timesteps if int(t) >= 1}))
        if len(timesteps) > bm.MAX_SWEEP_TIMESTEPS or not timesteps:
            _LOG.warning("benchmark timesteps %s: expected 1 to %d values >= 1; using %s",
                         self.timesteps, bm.MAX_SWEEP_TIMESTEPS,
                         config.option("bench_timesteps").default)
            timesteps = config.option("bench_timesteps").default
        return replace(self, models=models, frameworks=frameworks, targets=targets,
                       timesteps=timesteps, device=_available(self.device))


def _known(what: str, names: tuple[str, ...], table: Any, option: str) -> tuple[str, ...]:
    kept = tuple(dict.fromkeys(n for n in names if n in table))
    for name in dict.fromkeys(n for n in names if n not in table):
        _LOG.warning("unknown benchmark %s %r (known: %s); skipped", what, name,
                     ", ".join(sorted(table)))
    if kept:
        return kept
    default = tuple(config.option(option).default)
    if names:
        _LOG.warning("no known benchmark %s left; using %s", what, ", ".join(default))
    return default


def _available(device: str) -> str:
    """``device`` when torch can use it, else ``cpu`` with one warning."""
    import torch

    try:
        torch.empty(0, device=device)
    except Exception as exc:
        _LOG.warning("benchmark device %r is not usable (%s); using cpu",
                     device, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return "cpu"
    return device
