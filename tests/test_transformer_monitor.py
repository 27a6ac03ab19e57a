"""The must-show of issue 14 for converted transformers: a monitored
STATransformerRecipe ViT and a monitored Qwen2SNNRecipe Qwen2 report spikes and
synaptic operations for every spiking layer, through OpenTelemetry.
The converted models hold no ``BaseNode``: their spiking layers are spikingjelly's
ann2snn encoders (``_STASpikeEncoder``, ``SignedQCFSSequenceEncoder``)."""

from __future__ import annotations

import warnings

import spikingjelly  # noqa: F401
import torch
import transformer_models as tm

T = 4


def _per_layer(otel, metric):
    return {p.attributes["layer_name"]: p for p in otel.points(metric)}


def _check_every_spiking_layer(otel, snn, neuron_type: str, expected: int):
    """``neuron_type`` modules are named from the model itself, not the monitor."""
    names = {name for name, m in snn.named_modules() if type(m).__name__ == neuron_type}
    assert len(names) == expected
    spikes, synops = _per_layer(otel, "neural.spikes"), _per_layer(otel, "neural.synops")
    reported = {n for n, p in spikes.items() if p.attributes["neuron_type"] == neuron_type}
    assert reported == names
    for name in names:
        assert spikes[name].value > 0, name
        assert synops[name].value > 0, name
    assert all(p.value > 0 for p in spikes.values())  # nothing monitored stays silent
    (conv,) = otel.spans("spikeformer.convert spikingjelly")
    assert conv.attributes["spikeformer.snn.spiking_layers"] >= expected


def test_monitored_sta_vit_reports_spikes_and_synops_for_every_spiking_layer(instrument, otel):
    instrument(monitor_sample_every=1)
    from spikingjelly.activation_based import ann2snn, functional

    loader = [(tm.images(16), torch.zeros(16))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snn = ann2snn.Converter(ann2snn.STATransformerRecipe(
            dataloader=loader, time_steps=T, mode="spiking_encoder")).convert(tm.TinyViT(16, 2, 1))
    with torch.no_grad():
        snn(tm.first_real_then_zero(tm.images(4, seed=3), T))
    functional.reset_net(snn)
    # one block: after n1, the attention output, n2, the GELU and the final norm
    _check_every_spiking_layer(otel, snn, "_STASpikeEncoder", 5)


def test_monitored_qwen2_reports_spikes_and_synops_for_every_spiking_layer(instrument, otel):
    import transformers  # noqa: F401
    instrument(monitor_sample_every=1)
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.ann2snn import (ModuleConverter, Qwen2SNNConfig,
                                                       Qwen2SNNRecipe, calibrate_qwen2_snn)

    ann, config = tm.tiny_qwen2(layers=1)
    snn_config = Qwen2SNNConfig(time_steps=T, calibration_levels=T)
    calibration = calibrate_qwen2_snn(ann, tm.token_batches(config, 2, 2), snn_config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snn = ModuleConverter(Qwen2SNNRecipe(calibration, snn_config)).convert(ann)
    with torch.no_grad():
        snn(tm.token_batches(config, 1, 2, seed=5)[0]["input_ids"])
    functional.reset_net(snn)
    # the input encoder, then query, key, value and MLP encoders per decoder layer
    _check_every_spiking_layer(otel, snn, "SignedQCFSSequenceEncoder",
                               1 + 4 * config.num_hidden_layers)
