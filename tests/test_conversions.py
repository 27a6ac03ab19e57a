"""Spans and metrics for real conversions and compile steps (sinabs, spikingjelly,
snntorch, nirtorch), on in-memory exporters."""

from __future__ import annotations

import pytest
import sinabs
import torch
from opentelemetry.trace import StatusCode

from models import INPUT_SHAPE, calibration_batches, nir_cnn, parameter_count, tiny_cnn


def _only(spans, name):
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"expected one {name!r}, got {[s.name for s in spans]}"
    return found[0]


def test_sinabs_conversion_span_and_metrics(instrument, otel):
    instrument()
    ann = tiny_cnn()
    net = sinabs.from_model(ann, input_shape=INPUT_SHAPE, batch_size=1, num_timesteps=8)

    span = _only(otel.spans(), "spikeformer.convert sinabs")
    attrs = span.attributes
    assert attrs["spikeformer.operation"] == "conversion"
    assert attrs["spikeformer.framework"] == "sinabs"
    assert attrs["spikeformer.model.type"] == "Sequential"
    assert attrs["spikeformer.model.parameters"] == parameter_count(ann)
    assert attrs["spikeformer.model.layers"] == 8
    assert attrs["spikeformer.snn.timesteps"] == 8
    assert attrs["spikeformer.snn.spiking_layers"] == 3
    assert attrs["spikeformer.success"] is True
    assert attrs["code.function.name"] == "sinabs.from_torch.from_model"
    assert span.status.status_code == StatusCode.UNSET
    assert len(list(net.spiking_model.modules())) > 1

    labels = {"model_type": "Sequential", "hardware_target": "none", "framework": "sinabs"}
    assert otel.value("spikeformer.conversions", **labels) == 1
    assert otel.value("spikeformer.conversion.errors") == 0
    (duration,) = otel.points("spikeformer.conversion.duration")
    assert dict(duration.attributes) == {"model_size": "tiny", "framework": "sinabs"}
    assert duration.count == 1 and 0 < duration.sum < 60
    # explicit second-shaped buckets (1 ms .. 1 h), not the SDK's millisecond default
    assert duration.explicit_bounds[0] == 0.001 and duration.explicit_bounds[-1] == 3600.0
    assert otel.value("spikeformer.active_conversions", framework="sinabs") == 0


def test_sinabs_reexport_and_defining_module_both_measured_once_each(instrument, otel):
    instrument()
    import sinabs.from_torch

    sinabs.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1)
    sinabs.from_torch.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1)
    assert len(otel.spans("spikeformer.convert sinabs")) == 2
    assert otel.value("spikeformer.conversions", framework="sinabs") == 2


def test_spikingjelly_conversion_with_stage_calibration_and_layer_spans(instrument, otel):
    instrument()
    from spikingjelly.activation_based import ann2snn

    snn = ann2snn.Converter(ann2snn.RateCodingRecipe(dataloader=calibration_batches(3, 4))
                            ).convert(tiny_cnn())
    spans = otel.spans()
    conv = _only(spans, "spikeformer.convert spikingjelly")
    assert conv.attributes["spikeformer.recipe"] == "RateCodingRecipe"
    assert conv.attributes["spikeformer.snn.spiking_layers"] == 3
    assert conv.attributes["spikeformer.success"] is True

    calib = _only(spans, "spikeformer.calibrate")
    assert calib.parent.span_id == conv.context.span_id
    assert calib.attributes["spikeformer.calibration.samples"] == 12
    assert calib.attributes["spikeformer.calibration.batches"] == 3

    stages = [s for s in spans if s.name.startswith("spikeformer.stage ")]
    assert [s.name.split()[1] for s in stages] == [
        "validate", "before_trace", "after_trace", "insert_observers", "replace", "finalize"]
    assert all(s.parent.span_id == conv.context.span_id for s in stages)

    replace = _only(spans, "spikeformer.stage replace")
    layers = otel.spans("spikeformer.convert_layer")
    assert sorted(s.attributes["spikeformer.layer.name"] for s in layers) == ["1", "4", "7"]
    assert all(s.parent.span_id == replace.context.span_id for s in layers)
    assert sum(1 for m in snn.modules() if type(m).__name__ == "IFNode") == 3
    assert otel.value("spikeformer.conversions", framework="spikingjelly") == 1


def test_layer_spans_can_be_switched_off(instrument, otel):
    instrument(layer_spans=False)
    from spikingjelly.activation_based import ann2snn

    ann2snn.Converter(ann2snn.RateCodingRecipe(dataloader=calibration_batches(1, 2))
                      ).convert(tiny_cnn())
    assert [s.name for s in otel.spans()] == ["spikeformer.convert spikingjelly"]


def test_conversion_error_is_recorded_and_reraised(instrument, otel):
    instrument()
    from spikingjelly.activation_based import ann2snn

    converter = ann2snn.Converter(ann2snn.RateCodingRecipe(dataloader=None))
    with pytest.raises(ValueError, match="requires a dataloader"):
        converter.convert(tiny_cnn())
    span = _only(otel.spans(), "spikeformer.convert spikingjelly")
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["spikeformer.success"] is False
    assert span.attributes["error.type"] == "ValueError"
    assert any(e.name == "exception" for e in span.events)
    assert otel.value("spikeformer.conversion.errors", framework="spikingjelly",
                      **{"error.type": "ValueError"}) == 1
    assert otel.value("spikeformer.conversions", framework="spikingjelly") == 1
    assert otel.value("spikeformer.active_conversions", framework="spikingjelly") == 0


def test_sinabs_nir_export_counts_as_compile_step_once(instrument, otel):
    instrument()
    snn = sinabs.from_model(nir_cnn(), input_shape=INPUT_SHAPE, batch_size=1).spiking_model
    graph = sinabs.to_nir(snn, torch.rand(1, *INPUT_SHAPE))
    assert graph.nodes

    spans = otel.spans()
    export = _only(spans, "spikeformer.export sinabs")
    assert export.attributes["spikeformer.hardware.target"] == "nir"
    assert export.attributes["spikeformer.export.direction"] == "to_nir"
    assert export.attributes["spikeformer.memory.peak_growth"] >= 0
    # sinabs uses nirtorch inside: a child span, but not a second count
    nested = [s for s in spans if s.name == "spikeformer.export nirtorch"]
    assert nested and all(s.parent.span_id == export.context.span_id for s in nested)
    assert otel.value("spike_compiler.compilations", framework="sinabs", operation="export",
                      target_hardware="nir", model_type="Sequential") == 1
    assert otel.value("spike_compiler.compilations", framework="nirtorch") == 0
    (duration,) = otel.points("spike_compiler.compilation.duration")
    assert duration.count == 1 and duration.explicit_bounds[0] == 0.001
    (memory,) = otel.points("spike_compiler.compilation.memory_growth")
    assert memory.count == 1

    back = sinabs.from_nir(graph, batch_size=1)
    assert type(back).__name__ == "GraphExecutor"
    assert sum(isinstance(m, sinabs.layers.IAFSqueeze) for m in back.modules()) == 3
    (imported,) = [s for s in otel.spans("spikeformer.export sinabs")
                   if s.attributes["spikeformer.export.direction"] == "from_nir"]
    assert imported.attributes["spikeformer.model.type"] == "NIRGraph"
    assert imported.attributes["code.function.name"] == "sinabs.nir.from_nir"
    assert otel.value("spike_compiler.compilations", framework="sinabs", operation="export") == 2


def _outcome(call):
    """(result, None) or (None, exception) of one call."""
    try:
        return call(), None
    except Exception as exc:  # the library's own failure, compared below
        return None, exc


def _assert_same_outcome(plain, measured):
    """The instrumented call did exactly what the plain call did: the same exception
    type and message, or a NIR graph with the same nodes and edges."""
    (graph, error), (graph_measured, error_measured) = plain, measured
    assert type(error_measured) is type(error)
    assert str(error_measured) == str(error)
    if error is None:
        assert sorted(graph_measured.nodes) == sorted(graph.nodes)
        assert sorted(graph_measured.edges) == sorted(graph.edges)


def _assert_export_span(otel, framework, error):
    span = _only(otel.spans(), f"spikeformer.export {framework}")
    assert span.attributes["spikeformer.export.direction"] == "to_nir"
    assert span.attributes["spikeformer.model.type"] == "Sequential"
    assert span.attributes["spikeformer.success"] is (error is None)
    assert otel.value("spike_compiler.compilations", framework=framework) == 1
    errors = otel.value("spike_compiler.compilation.errors", framework=framework)
    if error is None:
        assert errors == 0 and span.status.status_code == StatusCode.UNSET
    else:
        assert errors == 1 and span.status.status_code == StatusCode.ERROR
        assert span.attributes["error.type"] == type(error).__qualname__


def test_snntorch_nir_export_does_what_the_plain_call_does(instrument, otel):
    """With nir 1.0.4 (forced by sinabs) exporting a Leaky fails inside snntorch:
    instrumented, the call must fail the same way (or succeed the same way), and
    the span and the error counter must say which."""
    import snntorch
    import snntorch.export_nir

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4),
                                snntorch.Leaky(beta=0.9, init_hidden=True, output=True))
    sample = torch.rand(1, 4)
    plain = _outcome(lambda: snntorch.export_nir.export_to_nir(model, sample))
    instrument()
    measured = _outcome(lambda: snntorch.export_nir.export_to_nir(model, sample))
    _assert_same_outcome(plain, measured)
    _assert_export_span(otel, "snntorch", measured[1])


def test_spikingjelly_nir_export_does_what_the_plain_call_does(instrument, otel):
    """spikingjelly 2.0.0 calls nirtorch.torch_to_nir(type_check=...), which the
    nirtorch 2.0.2 that sinabs' nir<=1.0.4 pin forces does not accept: instrumented,
    the same TypeError with the same message (or, with compatible versions, the
    same graph)."""
    from spikingjelly.activation_based import layer, neuron, nir_exchange

    torch.manual_seed(0)
    net = torch.nn.Sequential(layer.Conv2d(2, 4, 3), neuron.IFNode(),
                              layer.Flatten(), layer.Linear(4 * 12 * 12, 10), neuron.IFNode())
    sample = torch.rand(1, *INPUT_SHAPE)
    plain = _outcome(lambda: nir_exchange.export_to_nir(net, sample))
    instrument()
    measured = _outcome(lambda: nir_exchange.export_to_nir(net, sample))
    _assert_same_outcome(plain, measured)
    _assert_export_span(otel, "spikingjelly", measured[1])


def test_nirtorch_round_trip_called_directly(instrument, otel):
    instrument()
    import nirtorch

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    graph = nirtorch.torch_to_nir(model, module_map={})
    rebuilt = nirtorch.nir_to_torch(graph, node_map={})
    assert type(rebuilt).__name__ == "GraphModule"
    spans = {s.attributes["spikeformer.export.direction"]: s
             for s in otel.spans("spikeformer.export nirtorch")}
    assert spans["to_nir"].attributes["spikeformer.model.parameters"] == parameter_count(model)
    assert spans["to_nir"].attributes["code.function.name"] == "nirtorch.torch_tracer.torch_to_nir"
    assert spans["from_nir"].attributes["spikeformer.model.type"] == "NIRGraph"
    assert otel.value("spike_compiler.compilations", framework="nirtorch", operation="export") == 2
