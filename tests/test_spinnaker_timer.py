"""sPyNNaker's real FecTimer in this process (imported before instrumenting, the
opposite order of tests/test_spinnaker.py): each way a step can end, the
exception passing through unchanged, suppression, and uninstrument."""

from __future__ import annotations

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation

# the extra [spinnaker], installed by scripts/bootstrap.sh
from spinn_front_end_common.interface import abstract_spinnaker_base
from spinn_front_end_common.interface.provenance import TimerWork
from spinn_front_end_common.interface.provenance.fec_timer import FecTimer

from opentelemetry_instrumentation_spikeformer.frameworks import spinnaker

ROWS = ("_change_category", "stop_category_timing", "__enter__", "skip", "error",
        "_insert_timing", "__exit__")


def _steps(otel):
    return {s.attributes["spinnaker.step"]: s for s in otel.spans()}


def _every_way_a_step_ends() -> None:
    """Four real FecTimer steps: ran, skipped, error(), raised (the same exception out)."""
    with FecTimer("Ran", TimerWork.OTHER):
        pass
    with FecTimer("Skipped", TimerWork.REPORT) as timer:
        timer.skip("cfg Reports:x is False")
    with FecTimer("Errored", TimerWork.OTHER) as timer:
        timer.error("binaries missing")
    boom = ValueError("boom")
    with pytest.raises(ValueError) as raised:
        with FecTimer("Raised", TimerWork.OTHER):
            raise boom
    assert raised.value is boom


def test_each_way_a_step_ends(instrument, otel):
    inst = instrument()
    _every_way_a_step_ends()
    steps = _steps(otel)
    assert {k: s.attributes["spinnaker.step.outcome"] for k, s in steps.items()} == {
        "Ran": "ok", "Skipped": "skipped", "Errored": "error", "Raised": "exception"}
    assert steps["Skipped"].attributes["spinnaker.step.skip_reason"] == "cfg Reports:x is False"
    assert steps["Skipped"].attributes["spinnaker.step.work"] == "Reporting"
    assert steps["Errored"].attributes["spinnaker.step.error"] == "binaries missing"
    assert steps["Errored"].status.status_code.name == "ERROR"
    assert steps["Raised"].attributes["error.type"] == "ValueError"
    assert [e.name for e in steps["Raised"].events] == ["exception"]
    assert all(s.name == f"spikeformer.stage {k}" for k, s in steps.items())
    assert not spinnaker._state(inst.telemetry).steps  # nothing kept per timer


def test_suppressed_steps_are_not_traced(instrument, otel):
    instrument()
    with suppress_instrumentation():
        with FecTimer("Quiet", TimerWork.OTHER):
            pass
    assert otel.spans() == []


def test_uninstrument_puts_every_original_back(instrument, otel):
    before = {name: FecTimer.__dict__[name] for name in ROWS}
    base = abstract_spinnaker_base.AbstractSpinnakerBase
    run, compression = base.__dict__["run"], base.__dict__["_do_early_compression"]
    inst = instrument()
    assert all(FecTimer.__dict__[name] is not before[name] for name in ROWS)
    inst.uninstrument()
    assert all(FecTimer.__dict__[name] is before[name] for name in ROWS)
    assert base.__dict__["run"] is run and base.__dict__["_do_early_compression"] is compression
    with FecTimer("After", TimerWork.OTHER) as timer:
        timer.skip("nothing traced")
    assert otel.spans() == []


@pytest.mark.parametrize("kind", ["tracer", "span"])
def test_broken_telemetry_leaves_the_steps_alone(kind):
    from opentelemetry import trace
    from opentelemetry.sdk.metrics import MeterProvider

    from opentelemetry_instrumentation_spikeformer import SpikeformerInstrumentor
    from test_reliability import RaisingSpanTracerProvider, RaisingTracerProvider

    provider = RaisingTracerProvider() if kind == "tracer" else RaisingSpanTracerProvider()
    inst = SpikeformerInstrumentor()
    inst.instrument(tracer_provider=provider, meter_provider=MeterProvider())
    try:
        _every_way_a_step_ends()
        assert not trace.get_current_span().get_span_context().is_valid
        assert not spinnaker._state(inst.telemetry).steps
    finally:
        inst.uninstrument()
