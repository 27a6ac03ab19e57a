"""What the plugin promises the user's program (README, "Guarantees"), one
regression test per promise, on the real libraries.

Most tests use only the public API, so that they can be run against an older
version of the package (``PYTHONPATH=<old>/src pytest tests/test_guarantees.py``).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import pickle
import random
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
from opentelemetry import trace

from interrupts import Interrupted, Interrupter
from models import INPUT_SHAPE, calibration_batches, tiny_cnn

import torch
import sinabs

from opentelemetry_instrumentation_spikeformer.monitor import hooks

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
    ("sinabs", "call_tap", 2, _MONITOR),  # half-way through attaching the layer taps
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

    instrument()
    events = logging.getLogger("spikeformer.events")
    monkeypatch.setattr(events, "level", logging.INFO)
    # setattr bypasses setLevel: drop isEnabledFor's cache, before and after
    events.manager._clear_cache()
    monkeypatch.setattr(events, "_cache", {})
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


@pytest.mark.parametrize("library,points", [("sinabs", 120), ("spikingjelly", 80)])
def test_interrupt_at_random_points_leaves_nothing_behind(instrument, otel, library, points):
    """Every line of our code and every OpenTelemetry call on the way is a
    possible Ctrl-C; a seeded sample of them is tried, one per conversion."""
    from opentelemetry_instrumentation_spikeformer.core.telemetry import Call
    from opentelemetry_instrumentation_spikeformer.monitor.spike_monitor import SpikeMonitor

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
    assert all(o._model() is not None for o in alive)  # a monitor lives only with its model


# --------------------------------------------------------------------------
# 1. Converted models are freed; collection cost does not grow with them
# --------------------------------------------------------------------------
@pytest.mark.parametrize("library", ["sinabs", "spikingjelly"])
def test_converted_model_and_its_monitor_are_freed(instrument, otel, library):
    instrument()
    converted = CONVERTERS[library]()
    model = spiking_model(converted)
    monitors = monitors_of(model)
    assert monitors  # auto-attached
    forward(model)
    assert otel.points("neural.spikes")  # hooked, read and collected
    refs = [weakref.ref(o) for o in (converted, model, *monitors)]
    del converted, model, monitors
    gc.collect()
    assert [r() for r in refs] == [None] * len(refs)


def test_collection_cost_does_not_grow_with_deleted_models(instrument, otel, monkeypatch):
    """Each collection reads the monitors of live models only, and the
    instrument set's own tables stay the same size."""
    from opentelemetry_instrumentation_spikeformer.monitor.instruments import instruments_for
    from opentelemetry_instrumentation_spikeformer.monitor.spike_monitor import SpikeMonitor

    instrument()
    reads = []
    real_read = SpikeMonitor.read
    monkeypatch.setattr(SpikeMonitor, "read", lambda self: reads.append(1) or real_read(self))
    sizes = []
    for cycles in (4, 12):
        for _ in range(cycles):
            model = spiking_model(convert_sinabs())
            forward(model)
            del model  # a sinabs model holds no cycle: freed here, no gc.collect() needed
            reads.clear()
            points = otel.points("neural.spikes")
            assert len(reads) <= 1  # at most the model not yet collected
        monitors = instruments_for(otel.meter_provider)
        sizes.append((len(points), len(monitors._exported), len(monitors._attrs)))
    assert sizes[0] == sizes[1]


def test_idle_and_unreachable_models_cost_no_read(instrument, otel, monkeypatch):
    """spikingjelly's models are reference cycles: a dropped one lives until
    Python's cyclic GC runs. A collection reads only monitors whose model ran
    since the previous read, so such models (and idle live ones) cost nothing."""
    from opentelemetry_instrumentation_spikeformer.monitor.spike_monitor import SpikeMonitor

    import spikingjelly  # noqa: F401
    instrument()
    reads = []
    real_read = SpikeMonitor.read
    monkeypatch.setattr(SpikeMonitor, "read", lambda self: reads.append(1) or real_read(self))
    gc.disable()  # the dropped models stay, as between two runs of the cyclic GC
    try:
        kept = spiking_model(convert_spikingjelly())
        forward(kept)
        for _ in range(4):
            dropped = spiking_model(convert_spikingjelly())
            forward(dropped)
            del dropped
        otel.points("neural.spikes")
        assert len(reads) == 5  # each ran once: read once
        reads.clear()
        before = otel.value("neural.spikes")
        assert otel.value("neural.spikes") == before and reads == []  # nothing ran since
        forward(kept)
        assert otel.value("neural.spikes") > before and len(reads) == 1
    finally:
        gc.enable()


# --------------------------------------------------------------------------
# 2. Pickling: converted models and patched callables round-trip as without us
# --------------------------------------------------------------------------
def _reset(model):
    from spikingjelly.activation_based import functional

    functional.reset_net(model)
    for module in model.modules():
        if hasattr(module, "reset_states"):
            module.reset_states()


def _run(model):
    with torch.no_grad():
        out = model(torch.ones(1, *INPUT_SHAPE))
    _reset(model)
    return out


def _no_hooks(model) -> bool:
    return not any(m._forward_hooks or m._forward_pre_hooks or hooks.taps_on(m)
                   for m in model.modules())


def _pickled(model, how: str) -> tuple[bytes, list]:
    """The bytes ``how`` writes. A plain pickle of a tensor embeds its storage's
    address, so for ``pickle`` tensors are taken out (persistent ids) and
    returned to be compared by value; ``torch.save`` numbers them itself."""
    import io

    buffer = io.BytesIO()
    if how == "torch.save":
        torch.save(model, buffer)
        return buffer.getvalue(), []
    tensors: list = []

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, torch.Tensor):
                tensors.append(obj)
                return len(tensors) - 1
            return None

    Pickler(buffer).dump(model)
    return buffer.getvalue(), tensors


def _same_pickle(a, b, how: str) -> bool:
    (data_a, tensors_a), (data_b, tensors_b) = _pickled(a, how), _pickled(b, how)
    return data_a == data_b and len(tensors_a) == len(tensors_b) and all(
        x.dtype == y.dtype and torch.equal(x, y) for x, y in zip(tensors_a, tensors_b))


@pytest.mark.parametrize("library", ["sinabs", "spikingjelly"])
@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_monitored_model_pickles_exactly_as_an_unmonitored_one(instrument, otel, library, how):
    import io

    plain = spiking_model(CONVERTERS[library]())  # not instrumented yet
    instrument()
    monitored = spiking_model(CONVERTERS[library]())
    assert monitors_of(monitored) and not monitors_of(plain)
    for _ in range(2):  # before and after the monitor's first forward
        assert _same_pickle(monitored, plain, how)
        _run(monitored), _run(plain)
    if how == "pickle":
        loaded = pickle.loads(pickle.dumps(monitored))
    else:
        loaded = torch.load(io.BytesIO(_pickled(monitored, how)[0]), weights_only=False)
    assert torch.equal(_run(loaded), _run(plain))
    assert not monitors_of(loaded) and _no_hooks(loaded)  # not monitored again
    spikes = otel.value("neural.spikes")
    _run(loaded)
    assert otel.value("neural.spikes") == spikes
    assert monitors_of(monitored)  # pickling took nothing from the original


def test_model_with_user_hooks_pickles_and_loads(instrument, otel):
    """A hook dict the user already filled keeps our hook as a no-op stand-in
    in pickles: the model loads (without the plugin too) and runs."""
    from picklable import user_hook

    ann = seeded_cnn()
    ann[0].register_forward_hook(user_hook)
    instrument()
    model = spiking_model(convert_sinabs(ann))
    assert monitors_of(model)
    data = pickle.dumps(model)  # before the first forward: the discovery hooks are on
    loaded = pickle.loads(data)
    assert torch.equal(_run(loaded), _run(model))
    assert not monitors_of(loaded)


def test_patched_callables_pickle_by_reference(instrument):
    from spikingjelly.activation_based import ann2snn

    instrument()
    assert pickle.loads(pickle.dumps(sinabs.from_model)) is sinabs.from_model
    assert pickle.loads(pickle.dumps(sinabs.from_torch.from_model)) is sinabs.from_model
    via_class = pickle.loads(pickle.dumps(ann2snn.Converter.convert))
    assert via_class.__wrapped__ is ann2snn.Converter.convert.__wrapped__
    converter = ann2snn.Converter(ann2snn.RateCodingRecipe(dataloader=calibration_batches(1, 4)))
    bound = pickle.loads(pickle.dumps(converter.convert))
    assert type(bound.__self__) is type(converter)
    assert spiking_model(bound(seeded_cnn())) is not None


_BLOCKER = f"""
import importlib.abc, sys
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "{PACKAGE}":
            raise ImportError("the plugin is not installed here")
sys.meta_path.insert(0, Blocker())
"""


def _loads_without_plugin(payloads: list[tuple[str, bytes]]) -> None:
    """Load each (how, bytes) in a process where our package cannot be
    imported; run the models, check the callables."""
    code = _BLOCKER + f"""
import io, pickle, torch
for how, data in pickle.loads(sys.stdin.buffer.read()):
    obj = pickle.loads(data) if how == "pickle" else torch.load(io.BytesIO(data), weights_only=False)
    for item in obj if isinstance(obj, list) else [obj]:
        if isinstance(item, torch.nn.Module):
            with torch.no_grad():
                item(torch.ones(1, *{INPUT_SHAPE!r}))
        else:
            assert callable(item)
assert "{PACKAGE}" not in sys.modules
print("loaded")
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(HERE)  # picklable.py, nothing of ours
    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(payloads),
                         capture_output=True, timeout=180, env=env)
    assert out.returncode == 0, out.stderr.decode()[-3000:]
    assert out.stdout.decode().strip() == "loaded"


@pytest.mark.subprocess
def test_pickles_made_under_the_plugin_load_without_it(instrument):
    """Monitored models (pickle and torch.save, one with a user hook) and
    patched callables, loaded where the plugin is not installed."""
    from spikingjelly.activation_based import ann2snn

    from picklable import user_hook

    instrument()
    payloads = []
    hooked = seeded_cnn()
    hooked[0].register_forward_hook(user_hook)
    for model in (spiking_model(convert_sinabs()), spiking_model(convert_spikingjelly()),
                  spiking_model(convert_sinabs(hooked))):
        assert monitors_of(model)
        payloads += [(how, _pickled(model, "torch.save")[0] if how == "torch.save"
                      else pickle.dumps(model)) for how in ("pickle", "torch.save")]
    converter = ann2snn.Converter(ann2snn.RateCodingRecipe(dataloader=calibration_batches(1, 4)))
    payloads.append(("pickle", pickle.dumps([sinabs.from_model, ann2snn.Converter.convert,
                                             converter.convert])))
    _loads_without_plugin(payloads)


@pytest.mark.subprocess
def test_spawned_processes_take_a_monitored_model(instrument, tmp_path):
    """(spikingjelly's model: a sinabs one cannot cross processes, plugin or not,
    as it holds a non-leaf tensor that requires grad.)"""
    import multiprocessing

    import torch.multiprocessing as tmp

    from picklable import forward_sum, forward_to_file

    import spikingjelly  # noqa: F401
    instrument()
    model = spiking_model(convert_spikingjelly())
    assert monitors_of(model)
    shape = (1, *INPUT_SHAPE)
    expected = forward_sum(pickle.loads(pickle.dumps(model)), shape)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(forward_sum, (model, shape)) == expected
    tmp.spawn(forward_to_file, args=(model, shape, str(tmp_path / "out")), nprocs=1)
    assert float((tmp_path / "out").read_text()) == expected
    assert monitors_of(model)


# --------------------------------------------------------------------------
# 3. A caught exception prints nothing
# --------------------------------------------------------------------------
@pytest.mark.subprocess
def test_caught_failing_conversion_prints_nothing():
    code = """
import sinabs
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry_instrumentation_spikeformer import SpikeformerInstrumentor

SpikeformerInstrumentor().instrument(tracer_provider=TracerProvider(),
                                     meter_provider=MeterProvider())
try:
    sinabs.from_model(object(), input_shape=(1, 4, 4))
except AttributeError:
    print("caught")
"""
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "caught\n"
    assert out.stderr == ""


# --------------------------------------------------------------------------
# 5. Bad configuration: one warning naming the variable, the default, no crash or hang
# --------------------------------------------------------------------------
INSTRUMENTORS_SCRIPT = """
import json
from importlib.metadata import entry_points
print(json.dumps({ep.name: ep.load()().is_instrumented_by_opentelemetry
                  for ep in entry_points(group="opentelemetry_instrumentor")}))
"""
QUIET_SDK = {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
             "OTEL_LOGS_EXPORTER": "none"}


@pytest.mark.subprocess
def test_bad_log_level_under_the_launcher_skips_no_instrumentor():
    """``"²".isdigit()`` is true; ``int("²")`` raises: that used to fail our
    instrument() and make the launcher skip every instrumentor after ours."""
    runs = {}
    for level in ("info", "²"):
        out = run_python(INSTRUMENTORS_SCRIPT, launcher=True,
                         env_extra={**QUIET_SDK, "OTEL_PYTHON_SPIKEFORMER_LOG_LEVEL": level})
        assert out.returncode == 0, out.stderr[-2000:]
        runs[level] = json.loads(out.stdout.strip().splitlines()[-1])
    assert runs["²"] == runs["info"]
    assert runs["²"]["spikeformer"] and runs["²"]["spikeformer_devices"]
    assert all(runs["²"].values()), runs["²"]


def test_bad_log_level_is_one_warning_and_the_default(caplog):
    from opentelemetry_instrumentation_spikeformer.core.settings import load_settings

    with caplog.at_level(logging.WARNING):
        settings = load_settings(environ={"OTEL_PYTHON_SPIKEFORMER_LOG_LEVEL": "²"})
    assert settings.log_level == "INFO"
    [record] = caplog.records
    assert "OTEL_PYTHON_SPIKEFORMER_LOG_LEVEL" in record.getMessage()


@pytest.mark.parametrize("raw", ["1e10", "inf", "nan", "-1", "1e400"])
def test_every_duration_setting_is_bounded(caplog, raw):
    """Each seconds/milliseconds setting refuses values a timer cannot take
    (``Event.wait(1e10)`` raises OverflowError and killed the poller)."""
    from opentelemetry_instrumentation_spikeformer.core.settings import OPTIONS, load_settings

    durations = [o for o in OPTIONS if "seconds" in o.doc.lower() or o.env.endswith(
        ("_INTERVAL", "_TIMEOUT", "_MS"))]
    assert {o.name for o in durations} >= {"device_poll_interval", "probe_timeout",
                                            "bench_interval", "timestep_ms"}
    with caplog.at_level(logging.WARNING):
        settings = load_settings(environ={o.env: raw for o in durations})
    for option in durations:
        assert getattr(settings, option.name) == option.default
        assert sum(option.env in r.getMessage() for r in caplog.records) == 1
        assert option.default < threading_timeout_max()


def threading_timeout_max() -> float:
    import threading

    return threading.TIMEOUT_MAX


def test_poller_lives_at_the_longest_interval():
    import threading

    from opentelemetry_instrumentation_spikeformer.core.settings import DAY_S
    from opentelemetry_instrumentation_spikeformer.devices.poller import Poller

    poller = Poller([], DAY_S, 1.0).start()
    try:
        threading.Event().wait(0.2)
        assert poller._thread.is_alive()
    finally:
        poller.stop()
    assert not poller._thread.is_alive()


@pytest.mark.parametrize("entry", ["builtins:len=conversion",
                                   f"{PACKAGE}.core.telemetry:_bind=conversion",
                                   "opentelemetry.trace:get_tracer=conversion",
                                   "wrapt:wrap_function_wrapper=conversion"])
def test_extra_targets_refuse_builtins_our_package_opentelemetry_and_wrapt(instrument, caplog,
                                                                          entry):
    import builtins

    real_len = builtins.len
    with caplog.at_level(logging.WARNING):
        instrument(extra_targets=entry)
    assert builtins.len is real_len
    [record] = [r for r in caplog.records if "OTEL_PYTHON_SPIKEFORMER_EXTRA_TARGETS" in
                r.getMessage()]
    assert entry in record.getMessage() and "cannot be instrumented" in record.getMessage()
    assert len([1, 2]) == 2


def test_extra_target_our_telemetry_itself_calls_does_not_recurse(instrument, otel):
    """``time.perf_counter`` is measured for the user, and called bare by our
    own code while it measures (the re-entrancy guard; it used to recurse)."""
    import time

    instrument(extra_targets="time:perf_counter=conversion")
    assert isinstance(time.perf_counter(), float)
    instrument()  # restores time.perf_counter before anything else measures it
    spans = otel.spans("spikeformer.convert time")
    assert spans and all(s.parent is None for s in spans)
    assert otel.value("spikeformer.conversions", framework="time") == len(spans)


@pytest.mark.parametrize("entry,says", [
    ("json:no_such_function=conversion", "no_such_function not found in module json"),
    ("json.no_such_module:f=conversion", "module json.no_such_module not found"),
    ("no_such_package_4711:f=conversion", "module no_such_package_4711 not found"),
])
def test_extra_target_that_does_not_exist_warns(instrument, caplog, entry, says):
    with caplog.at_level(logging.WARNING):
        instrument(extra_targets=entry)
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if says in m and "OTEL_PYTHON_SPIKEFORMER_EXTRA_TARGETS" in m], \
        messages


@pytest.mark.parametrize("content,says", [(bytes(range(256)) * 8, "not UTF-8"),
                                          (b" " * (2 << 20) + b"{}", "larger than")])
def test_energy_table_file_is_read_once_at_instrument(instrument, otel, caplog, monkeypatch,
                                                      tmp_path, content, says):
    """A binary or huge file is one warning naming the variable, at instrument();
    conversions never read it again."""
    from opentelemetry_instrumentation_spikeformer.monitor import energy

    path = tmp_path / "table.json"
    path.write_bytes(content)
    reads = []
    real_parse = energy._parse
    monkeypatch.setattr(energy, "_parse", lambda raw: reads.append(raw) or real_parse(raw))
    monkeypatch.setenv("OTEL_PYTHON_SPIKEFORMER_ENERGY_TABLE", str(path))
    with caplog.at_level(logging.WARNING):
        instrument()
        assert len(reads) == 1
        for _ in range(2):
            assert monitors_of(spiking_model(convert_sinabs()))
    assert len(reads) == 1
    warnings = [r.getMessage() for r in caplog.records
                if "OTEL_PYTHON_SPIKEFORMER_ENERGY_TABLE" in r.getMessage()]
    assert len(warnings) == 1 and says in warnings[0], warnings


def test_tracer_provider_whose_get_tracer_raises_costs_only_spans(instrument, otel):
    class BrokenTracerProvider:
        def get_tracer(self, *args, **kwargs):
            raise RuntimeError("no tracer today")

    from opentelemetry_instrumentation_spikeformer import SpikeformerInstrumentor

    inst = SpikeformerInstrumentor()
    inst.instrument(tracer_provider=BrokenTracerProvider(), meter_provider=otel.meter_provider)
    try:
        assert monitors_of(spiking_model(convert_sinabs()))
        assert otel.value("spikeformer.conversions") == 1
    finally:
        inst.uninstrument()


# --------------------------------------------------------------------------
# 7. No thread in a program that uses no SNN library; polling once one is imported
# --------------------------------------------------------------------------
THREADS_SCRIPT = """
import json, threading, time
def ours():
    return sorted({t.name for t in threading.enumerate() if t.name.startswith("spikeformer")})
plain = ours()
import sinabs
deadline = time.monotonic() + 20
while not ours() and time.monotonic() < deadline:
    time.sleep(0.05)
print(json.dumps({"plain": plain, "after_sinabs": ours()}))
"""


@pytest.mark.subprocess
def test_device_polling_starts_only_with_an_snn_library():
    """Under the launcher with psutil installed (the host adapter can work), a
    program gets no thread of ours until it imports an SNN library."""
    import psutil  # noqa: F401
    out = run_python(THREADS_SCRIPT, launcher=True, env_extra=QUIET_SDK)
    assert out.returncode == 0, out.stderr[-2000:]
    threads = json.loads(out.stdout.strip().splitlines()[-1])
    assert threads["plain"] == []
    assert "spikeformer-device-poller" in threads["after_sinabs"]


def test_no_metric_of_ours_has_a_name_system_metrics_owns():
    """``system.memory.utilization`` and ``process.*`` are opentelemetry-instrumentation-
    system-metrics' names: emitting our own definition under them conflicts."""
    from opentelemetry.instrumentation.system_metrics import _DEFAULT_CONFIG

    from opentelemetry_instrumentation_spikeformer.core.metrics import all_metrics

    theirs = set(_DEFAULT_CONFIG) | {"system.memory.utilization", "process.memory.usage",
                                     "process.cpu.utilization"}
    assert {spec.name for spec in all_metrics()} & theirs == set()


# --------------------------------------------------------------------------
# 11. Instrumented without an SDK: one visible warning, at the first call
# --------------------------------------------------------------------------
NO_SDK = "no OpenTelemetry SDK is configured"
CONVERT_TWICE = """
import sinabs
from models import INPUT_SHAPE, tiny_cnn
for _ in range(2):
    sinabs.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1)
print("converted")
"""


@pytest.mark.subprocess
def test_launcher_without_an_sdk_warns_once_at_the_first_conversion():
    no_configurator = run_python(CONVERT_TWICE, launcher=True,
                                 env_extra={"OTEL_PYTHON_CONFIGURATOR": "none"})
    assert no_configurator.returncode == 0, no_configurator.stderr[-2000:]
    assert no_configurator.stdout.strip() == "converted"
    assert no_configurator.stderr.count(NO_SDK) == 1, no_configurator.stderr[-2000:]
    assert "TelemetryNotConfiguredWarning" in no_configurator.stderr
    with_sdk = run_python(CONVERT_TWICE, launcher=True, env_extra=QUIET_SDK)
    assert with_sdk.returncode == 0, with_sdk.stderr[-2000:]
    assert NO_SDK not in with_sdk.stderr


def test_no_sdk_warning_only_for_global_no_op_providers(otel, monkeypatch):
    import warnings

    from opentelemetry_instrumentation_spikeformer import (
        SpikeformerInstrumentor,
        TelemetryNotConfiguredWarning,
    )
    from opentelemetry_instrumentation_spikeformer.core import scope

    inst = SpikeformerInstrumentor()
    monkeypatch.setattr(scope, "_warned_no_sdk", False)
    inst.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        convert_sinabs()
    inst.uninstrument()
    assert not [w for w in seen if w.category is TelemetryNotConfiguredWarning]
    inst.instrument()  # the global providers: the API's proxies, no SDK behind them
    try:
        with pytest.warns(TelemetryNotConfiguredWarning, match=NO_SDK):
            convert_sinabs()
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            convert_sinabs()
        assert not [w for w in seen if w.category is TelemetryNotConfiguredWarning]
    finally:
        inst.uninstrument()
