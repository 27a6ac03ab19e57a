"""BrainChip Akida 2.19.3 (``.venv-akida``): real mappings onto virtual devices;
the program size and neural-processor counts on the spans and gauges against
the mapped model and Akida's own count."""

from __future__ import annotations

import gc
import sys
import weakref

import numpy as np
import pytest

import akida
from akida.mapping import _get_model_nps  # the count behind the model summary's "NPs"

from launched import launch

COMPILE, MAP = "spikeformer.compile akida", "spikeformer.stage map"


def build_model(pool_last: bool = False):
    """A small native Akida v1 model with random integer weights (all-zero weights
    cannot go on the input-convolution block)."""
    rng = np.random.default_rng(0)
    model = akida.Model()
    model.add(akida.InputConvolutional(input_shape=(28, 28, 1), kernel_size=(3, 3), filters=16,
                                       weights_bits=8, act_bits=4, kernel_stride=(2, 2),
                                       name="in"))
    if pool_last:  # max pooling before a dense layer: no hardware mapping exists
        model.add(akida.Convolutional(kernel_size=(3, 3), filters=16, weights_bits=4, act_bits=4,
                                      pool_size=(2, 2), pool_type=akida.PoolType.Max,
                                      name="c1"))
    else:
        model.add(akida.Convolutional(kernel_size=(3, 3), filters=32, weights_bits=4,
                                      act_bits=4, name="c1"))
        model.add(akida.Convolutional(kernel_size=(3, 3), filters=64, weights_bits=4,
                                      act_bits=4, kernel_stride=(2, 2), name="c2"))
    model.add(akida.FullyConnected(units=10, weights_bits=4, activation=False, name="fc"))
    for layer in model.layers:
        weights = layer.get_variable("weights")
        bound = 127 if layer.name == "in" else 7
        layer.set_variable("weights", rng.integers(-bound, bound, size=weights.shape,
                                                   endpoint=True).astype(weights.dtype))
    return model


def _gauge(otel, name):
    return {p.attributes.get("state", p.attributes.get("hw.id")): p.value
            for p in otel.points(name)}


@pytest.mark.parametrize("device,options", [
    ("AKD1000", {}), ("AKD1000", {"mode": akida.MapMode.Minimal}), ("AKD1500", {})],
    ids=["AKD1000", "AKD1000-minimal", "AKD1500"])
def test_a_map_is_a_compile_span_with_the_program_size(instrument, otel, device, options):
    instrument()
    model, target = build_model(), getattr(akida, device)()
    assert model.map(target, **options) is None
    [outer], [step] = otel.spans(COMPILE), otel.spans(MAP)
    assert step.parent.span_id == outer.context.span_id and len(otel.spans()) == 2
    programs = [seq.program for seq in model.sequences if seq.program is not None]
    size = sum(len(program) for program in programs)
    assert size > 0 and step.attributes["akida.program_size"] == size
    assert outer.attributes["akida.program_size"] == size
    assert step.attributes["akida.nps_used"] == _get_model_nps(model)
    assert step.attributes["akida.nps_available"] == len(target.mesh.nps)
    assert outer.attributes["spikeformer.hardware.target"] == "akida"
    attempts = [e for e in step.events if e.name == "akida.map_attempt"]
    assert attempts and attempts[-1].attributes["akida.outcome"] == "mapped"
    assert otel.value("neuromorphic.compile.program_size", target_hardware="akida") == size
    assert _gauge(otel, "neuromorphic.compile.cores") == {
        "used": _get_model_nps(model), "available": len(target.mesh.nps)}
    assert _gauge(otel, "neuromorphic.compile.core_utilization") == {
        "0": _get_model_nps(model) / len(target.mesh.nps)}


def test_a_failed_map_raises_the_same_exception(instrument, otel):
    instrument()
    model = build_model(pool_last=True)
    with pytest.raises(RuntimeError) as raised:
        model.map(akida.AKD1000(), hw_only=True, mode=akida.MapMode.Minimal)
    spans = otel.spans()
    assert len(spans) == 2 and all(s.status.status_code.name == "ERROR" for s in spans)
    assert all(s.attributes["error.type"] == "RuntimeError" for s in spans)
    assert type(raised.value) is RuntimeError and otel.points("neuromorphic.compile.cores") == []


def test_unmapping_is_not_measured(instrument, otel):
    instrument()
    model = build_model()
    model.map(akida.AKD1000())
    otel.exporter.clear()
    model.map(None)
    assert otel.spans() == []


def test_uninstrument_puts_back_the_class_entries_and_mapping_works(instrument, otel):
    originals = {name: akida.Model.__dict__[name] for name in ("map", "_map")}
    inst = instrument()
    assert all(akida.Model.__dict__[n] is not originals[n] for n in originals)
    inst.uninstrument()
    assert all(akida.Model.__dict__[n] is originals[n] for n in originals)
    assert type(akida.Model.__dict__["_map"]).__name__ == "instancemethod"
    model = build_model()
    model.map(akida.AKD1000())
    assert model.sequences[0].program is not None and otel.spans() == []


def test_the_model_is_not_kept_alive(instrument):
    instrument()
    model = build_model()
    model.map(akida.AKD1000())
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


LAUNCHED = """
import numpy as np, akida
model = akida.Model()
model.add(akida.InputConvolutional(input_shape=(8, 8, 1), kernel_size=(3, 3), filters=8,
                                   weights_bits=8, act_bits=4, name="in"))
model.add(akida.FullyConnected(units=4, weights_bits=4, activation=False, name="fc"))
for layer in model.layers:
    w = layer.get_variable("weights")
    layer.set_variable("weights", np.ones(w.shape, dtype=w.dtype))
model.map(akida.AKD1000())
"""


def test_under_the_launcher_without_torch(tmp_path):
    out = launch(LAUNCHED, tmp_path)
    assert '"name": "spikeformer.compile akida"' in out and '"name": "spikeformer.stage map"' in out
    assert '"name": "neuromorphic.compile.program_size"' in out


def test_no_torch_needed():
    assert "torch" not in sys.modules
