"""The Spikeformer kits' rows switch on when such a package is imported (a small package
with the observability design's API, created on a temp path)."""

from __future__ import annotations

import pytest
import torch


def _ann():
    return torch.nn.Sequential(torch.nn.Linear(10, 20), torch.nn.ReLU(), torch.nn.Linear(20, 4))


def test_converter_and_calibration(kits, instrument, otel):
    instrument()
    import spikeformer

    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.rand(10, 10), torch.zeros(10)), batch_size=5)
    snn = spikeformer.SpikeformerConverter().convert(_ann(), calibration_data=loader)
    assert isinstance(snn[1], spikeformer.LifNeuron)
    (conv,) = otel.spans("spikeformer.convert spikeformer")
    assert conv.attributes["spikeformer.snn.timesteps"] == 32
    assert conv.attributes["spikeformer.snn.spiking_layers"] == 1
    (calib,) = otel.spans("spikeformer.calibrate")
    assert calib.parent.span_id == conv.context.span_id
    assert calib.attributes["spikeformer.calibration.samples"] == 10
    assert otel.value("spikeformer.conversions", framework="spikeformer",
                      hardware_target="none", model_type="Sequential") == 1


def test_pipeline_nests_conversion_and_counts_compile(kits, instrument, otel):
    instrument()
    from spikeformer.conversion import ConversionPipeline

    ConversionPipeline(target="loihi2", timesteps=16).convert(_ann())
    spans = otel.spans()
    outer = next(s for s in spans if s.name == "spikeformer.convert spikeformer" and s.parent is None)
    assert outer.attributes["spikeformer.hardware.target"] == "loihi2"
    assert outer.attributes["spikeformer.snn.timesteps"] == 16
    inner = [s for s in spans if s.name == "spikeformer.convert spikeformer" and s.parent]
    (compile_span,) = otel.spans("spikeformer.compile spikeformer")
    assert len(inner) == 1 and inner[0].parent.span_id == outer.context.span_id
    assert compile_span.parent.span_id == outer.context.span_id
    # the nested conversion is a span, not a second conversion; the compile counts
    assert otel.value("spikeformer.conversions") == 1
    assert otel.value("spike_compiler.compilations", target_hardware="loihi2",
                      operation="compile", framework="spikeformer") == 1


def test_backend_subclasses_compile_and_deploy(kits, instrument, otel):
    instrument()
    from spikeformer.hardware import NeuromorphicDeployer, SpiNNakerBackend

    NeuromorphicDeployer("spinnaker").deploy_model(_ann())
    assert otel.value("spike_compiler.compilations", target_hardware="spinnaker",
                      operation="compile") == 1
    assert otel.value("spike_compiler.compilations", target_hardware="spinnaker",
                      operation="deploy") == 1
    (deploy,) = otel.spans("spikeformer.deploy spikeformer")
    assert deploy.attributes["code.function.name"] == "spikeformer.hardware.SpiNNakerBackend.deploy"

    with pytest.raises(MemoryError) as excinfo:
        NeuromorphicDeployer("spinnaker", max_neurons=10).deploy_model(_ann())
    assert "exceed" in str(excinfo.value)
    assert otel.value("spike_compiler.compilation.errors", target_hardware="spinnaker",
                      **{"error.type": "MemoryError"}) == 1

    original = SpiNNakerBackend.__dict__["compile"]
    from opentelemetry_instrumentation_spikeformer import SpikeformerInstrumentor
    from opentelemetry_instrumentation_spikeformer.core.patching import SpikeformerWrapper

    assert isinstance(original, SpikeformerWrapper)
    SpikeformerInstrumentor().uninstrument()
    assert SpiNNakerBackend.__dict__["compile"] is original.__wrapped__


def test_spike_transformer_compiler(kits, instrument, otel):
    instrument()
    from spike_transformer_compiler import SpikeCompiler

    compiled = SpikeCompiler(target="loihi3", time_steps=4).compile(_ann(), (1, 10))
    assert compiled.energy_per_inference == 0.5
    (span,) = otel.spans("spikeformer.compile spike_transformer_compiler")
    assert span.attributes["spikeformer.hardware.target"] == "loihi3"
    assert span.attributes["spikeformer.snn.timesteps"] == 4
    assert otel.value("spike_compiler.compilations", target_hardware="loihi3",
                      framework="spike_transformer_compiler", model_type="Sequential") == 1
    with pytest.raises(ValueError):
        SpikeCompiler().compile(_ann(), ())
    assert otel.value("spike_compiler.compilation.errors", target_hardware="loihi3") == 1


def test_converted_kit_model_gets_the_spike_monitor(kits, instrument, otel):
    """Auto-attach on the kit's converter; spikes of its LifNeuron counted exactly."""
    instrument()
    import spikeformer
    from opentelemetry_instrumentation_spikeformer.monitor.spike_monitor import monitors_of

    snn = spikeformer.SpikeformerConverter().convert(_ann())
    assert monitors_of(snn)
    fired = []
    snn[1].register_forward_hook(lambda _m, _i, out: fired.append(float(out.sum())))
    torch.manual_seed(0)
    with torch.no_grad():
        snn(torch.rand(2, 8, 10) * 4)  # (batch, time, features)
    assert fired[0] > 0
    assert otel.value("neural.spikes", model_name="Sequential", neuron_type="LifNeuron") == fired[0]
