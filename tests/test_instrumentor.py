"""Instrumentor lifecycle: uninstrument restores every original, instrumenting
twice does not double spans, suppression is honoured, import order does not matter."""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts
from opentelemetry.instrumentation.utils import suppress_instrumentation

from models import INPUT_SHAPE, tiny_cnn
from opentelemetry_instrumentation_spikeformer import SpikeformerInstrumentor
from opentelemetry_instrumentation_spikeformer.core.patching import SpikeformerWrapper, _current, _subclasses
from opentelemetry_instrumentation_spikeformer.frameworks import all_frameworks

BUILTIN_TARGETS = tuple(t for fw in all_frameworks() for t in fw.targets)

HERE = Path(__file__).parent


def _snapshot():
    """Every (owner, attr) a built-in row can patch among imported modules -> object."""

    found = {}
    for row in (r for t in BUILTIN_TARGETS for r in t.expanded()):
        module = sys.modules.get(row.module)
        if module is None:
            continue
        *path, attr = row.qualname.split(".")
        owner = module
        for part in path:
            owner = getattr(owner, part, None)
        if owner is None or _current(owner, attr) is None:
            continue
        owners = [owner] + (list(_subclasses(owner)) if row.subclasses else [])
        for o in owners:
            if _current(o, attr) is not None:
                found[(id(o), attr)] = (o, attr, _current(o, attr))
    return found


def test_uninstrument_restores_every_original(instrument):
    import sinabs  # noqa: F401
    import snntorch.export_nir  # noqa: F401
    import snntorch.import_nir  # noqa: F401
    from spikingjelly.activation_based import ann2snn  # noqa: F401

    before = _snapshot()
    assert len(before) > 20
    assert not any(isinstance(obj, SpikeformerWrapper) for _, _, obj in before.values())

    inst = instrument()
    during = _snapshot()
    wrapped = [key for key, (_, _, obj) in during.items() if isinstance(obj, SpikeformerWrapper)]
    # every own definition of a patched attribute is wrapped
    assert set(wrapped) == set(before)

    inst.uninstrument()
    after = _snapshot()
    assert set(after) == set(before)
    for key, (owner, attr, original) in before.items():
        assert after[key][2] is original, f"{owner!r}.{attr} not restored"


def test_instrument_twice_gives_one_span_per_call(instrument, otel, caplog):
    import sinabs

    inst = instrument()
    with caplog.at_level(logging.WARNING):
        inst.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    assert "already instrumented" in caplog.text
    assert SpikeformerInstrumentor() is inst  # BaseInstrumentor is a singleton
    sinabs.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1)
    assert len(otel.spans("spikeformer.convert sinabs")) == 1
    assert otel.value("spikeformer.conversions") == 1


def test_reinstrument_after_uninstrument(instrument, otel):
    import sinabs

    inst = instrument()
    inst.uninstrument()
    sinabs.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1)
    assert otel.spans() == []
    instrument()
    sinabs.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1)
    assert len(otel.spans("spikeformer.convert sinabs")) == 1


def test_reference_kept_from_before_uninstrument_stops_measuring(instrument, otel):
    import sinabs

    instrument()
    kept = sinabs.from_model  # a user holding the wrapped function
    SpikeformerInstrumentor().uninstrument()
    kept(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1)
    assert otel.spans() == []


def test_suppress_instrumentation_is_honoured(instrument, otel):
    import sinabs

    instrument()
    with suppress_instrumentation():
        sinabs.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1)
    assert otel.spans() == []
    assert otel.value("spikeformer.conversions") == 0


def test_dependency_check_never_skips_the_plugin():
    from importlib.metadata import distribution

    dist = distribution("opentelemetry-instrumentation-spikeformer")
    assert get_dist_dependency_conflicts(dist) is None
    assert SpikeformerInstrumentor().instrumentation_dependencies() == ()


SCENARIOS = ["instrument-then-import", "import-then-instrument",
             "uninstrument-before-import", "reinstrument-before-import"]


@pytest.mark.subprocess
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_import_order(scenario):
    """Fresh interpreters: hooks patch whenever the library is imported, and pending
    hooks of an uninstrumented session stay inert."""
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    out = subprocess.run([sys.executable, str(HERE / "scripts" / "import_order.py"), scenario],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["torch_imported_by_instrument"] is False
    expected = 0 if scenario == "uninstrument-before-import" else 1
    assert result["spans"] == expected
    assert result["wrapped"] == (expected == 1)


def test_extra_targets_from_environment(monkeypatch, instrument, otel, caplog):
    import pipeline_kit

    monkeypatch.setenv("OTEL_PYTHON_SPIKEFORMER_EXTRA_TARGETS",
                       "pipeline_kit:convert=conversion,pipeline_kit:nope")
    with caplog.at_level(logging.WARNING):
        instrument()
    assert pipeline_kit.convert(object(), target="xylo") is pipeline_kit.RESULT
    (span,) = otel.spans("spikeformer.convert pipeline_kit")
    assert span.attributes["spikeformer.hardware.target"] == "xylo"
    assert "pipeline_kit:nope" in caplog.text
    SpikeformerInstrumentor().uninstrument()
    assert not isinstance(pipeline_kit.__dict__["convert"], SpikeformerWrapper)


def test_a_wrapped_function_pickles_by_reference(instrument):
    """A pickle made while instrumented loads without us: it names the function."""
    import sinabs
    import sinabs.from_torch

    original = sinabs.from_torch.from_model
    inst = instrument()
    data = pickle.dumps(sinabs.from_model)
    assert pickle.loads(data) is sinabs.from_torch.from_model  # our wrapper, while instrumented
    inst.uninstrument()
    assert pickle.loads(data) is original


def test_subclasses_are_listed_once_through_a_diamond():
    class A: pass
    class B(A): pass
    class C(A): pass
    class D(B, C): pass

    assert sorted(c.__name__ for c in _subclasses(A)) == ["B", "C", "D"]


def test_instrumenting_and_importing_report_no_internal_error(instrument, caplog):
    """Packages without rows of their own (snntorch) load their extension quietly."""
    with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_spikeformer"):
        instrument()
        import sinabs  # noqa: F401
        import snntorch  # noqa: F401
        import snntorch.export_nir  # noqa: F401
    assert [r.getMessage() for r in caplog.records
            if r.name.startswith("opentelemetry_instrumentation_spikeformer")] == []
