"""What the plugin promises the user's program (README, "Guarantees"), one
regression test per promise, on the real libraries.

Most tests use only the public API, so that they can be run against an older
version of the package (``PYTHONPATH=<old>/src pytest tests/test_guarantees.py``).
"""

from __future__ import annotations

import gc
import logging
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry import trace

from interrupts import Interrupted, Interrupter
from models import INPUT_SHAPE, calibration_batches, tiny_cnn

torch = pytest.importorskip("torch")
sinabs = pytest.importorskip("sinabs")

HERE = Path(__file__).parent
SRC = HERE.parent / "src"
PACKAGE = "opentelemetry_instrumentation_spikeformer"


def seeded_cnn():
    """The same small CNN every time (a random one can have a dead layer, which
    spikingjelly's calibration rejects)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return tiny_cnn()


def convert_sinabs(ann=None):
    return sinabs.from_model(ann if ann is not None else seeded_cnn(), input_shape=INPUT_SHAPE,
                             batch_size=1)


def convert_spikingjelly(ann=None):
    from spikingjelly.activation_based import ann2snn

    recipe = ann2snn.RateCodingRecipe(dataloader=calibration_batches(1, 4))
    return ann2snn.Converter(recipe).convert(ann if ann is not None else seeded_cnn())


CONVERTERS = {"sinabs": convert_sinabs, "spikingjelly": convert_spikingjelly}


def spiking_model(converted):
    return getattr(converted, "spiking_model", converted)


def forward(model, batch=1):
    """One inference: sinabs' Squeeze layers take (batch x timesteps, ...)."""
    from spikingjelly.activation_based import functional

    with torch.no_grad():
        out = model(torch.rand(batch, *INPUT_SHAPE, generator=torch.Generator().manual_seed(1)))
    functional.reset_net(model)
    return out


def monitors_of(model):
    from opentelemetry_instrumentation_spikeformer.monitor.spike_monitor import monitors_of

    return monitors_of(model)


def run_python(code: str, env_extra: dict | None = None, timeout: float = 180,
               launcher: bool = False, args: tuple = ()) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter (optionally under opentelemetry-instrument)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"PIP_NO_INDEX": "1", "PYTHONPATH": os.pathsep.join(
        p for p in (env.get("PYTHONPATH", ""), str(HERE)) if p)})
    env.update(env_extra or {})
    cmd = [sys.executable, "-c", code, *args]
    if launcher:
        cmd = [str(Path(sys.executable).parent / "opentelemetry-instrument"), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


# --------------------------------------------------------------------------
# 4. Ctrl-C inside our code leaves no span, context or gauge behind
# --------------------------------------------------------------------------
def _clean_state(otel) -> list[str]:
    """What an interrupt left behind in this context and in the gauge."""
    from opentelemetry_instrumentation_spikeformer.core import telemetry, wrappers

    left = []
    if trace.get_current_span().get_span_context().is_valid:
        left.append("current span")
    if telemetry._CURRENT_OP.get() is not None:
        left.append("current operation")
    if wrappers._IN_TELEMETRY.get():
        left.append("re-entrancy flag")
    if otel.value("spikeformer.active_conversions") != 0:
        left.append("active_conversions")
    return left


def _counted_normally(otel, convert) -> None:
    before = otel.value("spikeformer.conversions")
    spans = len(otel.spans())
    model = spiking_model(convert())
    assert otel.value("spikeformer.conversions") == before + 1
    new = otel.spans()[spans:]
    assert new and all(s.end_time for s in new)
    assert [s.parent for s in new if s.name.startswith("spikeformer.convert ")] == [None]
    assert monitors_of(model)
    assert otel.value("spikeformer.active_conversions") == 0


class _OpProxy:
    """``_CURRENT_OP`` with a ``set`` that is interrupted at the chosen call."""

    def __init__(self, real, at):
        self.real, self.at, self.calls = real, at, 0

    def get(self, *default):
        return self.real.get(*default)

    def set(self, value):
        self.calls += 1
        if self.calls == self.at:
            raise Interrupted(f"_CURRENT_OP.set #{self.at}")
        return self.real.set(value)


_SDK_TRACE = f"opentelemetry{os.sep}sdk{os.sep}trace"
_SDK_METRICS = f"opentelemetry{os.sep}sdk{os.sep}metrics"
_CONTEXT = f"opentelemetry{os.sep}context"
_LOGGING = f"logging{os.sep}__init__"
_MONITOR = f"{PACKAGE}{os.sep}monitor"
# (library, function, occurrence, where in the code); each is one step of start/finish
STEPS = [
    ("sinabs", "start_span", 1, _SDK_TRACE),
    ("sinabs", "attach", 1, _CONTEXT),  # our context attached
    ("sinabs", "attach", 2, _CONTEXT),  # restored
    ("sinabs", "_CURRENT_OP.set", 1, ""),
    ("sinabs", "_CURRENT_OP.set", 2, ""),
    ("sinabs", "add", 1, _SDK_METRICS),  # conversions counter
    ("sinabs", "record", 1, _SDK_METRICS),  # duration histogram
    ("sinabs", "info", 1, _LOGGING),  # start event
    ("sinabs", "info", 2, _LOGGING),  # end event
    ("sinabs", "set_attribute", 1, _SDK_TRACE),
    ("sinabs", "end", 1, _SDK_TRACE),  # span end
    ("sinabs", "on_converted", 1, _MONITOR),  # the monitor attaching itself
    ("sinabs", "forward_hook", 3, _MONITOR),  # half-way through attaching hooks
    ("sinabs", "perf_counter", 1, ""),
    ("spikingjelly", "count", 1, PACKAGE),  # the calibration sample counter (a forward hook)
    ("spikingjelly", "start_span", 3, _SDK_TRACE),  # a stage span inside the conversion
    ("spikingjelly", "end", 2, _SDK_TRACE),
    ("spikingjelly", "on_converted", 1, _MONITOR),
]


@pytest.mark.parametrize("library,step,occurrence,where", STEPS,
                         ids=[f"{s[0]}-{s[1]}-{s[2]}" for s in STEPS])
def test_interrupt_at_each_step_of_start_and_finish_leaves_nothing_behind(
        instrument, otel, monkeypatch, library, step, occurrence, where):
    from opentelemetry_instrumentation_spikeformer.core import telemetry

    pytest.importorskip(library)
    instrument()
    monkeypatch.setattr(logging.getLogger("spikeformer.events"), "level", logging.INFO)
    convert = CONVERTERS[library]
    convert()  # warm-up: caches filled, as in a real session
    if step == "_CURRENT_OP.set":
        proxy = _OpProxy(telemetry._CURRENT_OP, occurrence)
        monkeypatch.setattr(telemetry, "_CURRENT_OP", proxy)
        with pytest.raises(KeyboardInterrupt):
            convert()
        monkeypatch.setattr(telemetry, "_CURRENT_OP", proxy.real)
    elif step == "perf_counter":
        real = telemetry.time.perf_counter

        class Clock:
            @staticmethod
            def perf_counter():
                raise Interrupted("perf_counter")

        monkeypatch.setattr(telemetry, "time", Clock)
        with pytest.raises(KeyboardInterrupt):
            convert()
        monkeypatch.setattr(telemetry, "time", type("T", (), {"perf_counter": staticmethod(real)}))
    else:
        injector = Interrupter.at_call(step, occurrence, where)
        with pytest.raises(KeyboardInterrupt):
            injector.run(convert)
        assert injector.fired, f"{step} #{occurrence} never ran"
    assert _clean_state(otel) == []
    _counted_normally(otel, convert)


@pytest.mark.parametrize("library,points", [("sinabs", 150), ("spikingjelly", 100)])
def test_interrupt_at_random_points_leaves_nothing_behind(instrument, otel, library, points):
    """Every line of our code and every OpenTelemetry call on the way is a
    possible Ctrl-C; a seeded sample of them is tried, one per conversion."""
    from opentelemetry_instrumentation_spikeformer.core.telemetry import Call
    from opentelemetry_instrumentation_spikeformer.monitor.spike_monitor import SpikeMonitor

    pytest.importorskip(library)
    instrument()
    convert = CONVERTERS[library]
    for _ in range(2):
        convert()
    counter = Interrupter()
    counter.run(convert)
    assert counter.count > 300  # the path is long enough for the sample to mean something
    failures = []
    for at in sorted(random.Random(11).sample(range(1, counter.count + 1), points)):
        injector = Interrupter(at)
        try:
            injector.run(convert)
        except KeyboardInterrupt:
            pass
        left = _clean_state(otel)
        if left:
            failures.append((injector.fired, left))
            break
    assert failures == []
    _counted_normally(otel, convert)
    gc.collect()
    assert [o for o in gc.get_objects() if isinstance(o, Call) and not o.released] == []
    alive = [o for o in gc.get_objects() if isinstance(o, SpikeMonitor)]
    assert all(o.attached and o._model() is not None for o in alive)
