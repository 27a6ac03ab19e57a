"""The must-show of issue 14 for converted transformers: a monitored
STATransformerRecipe ViT and a monitored Qwen2SNNRecipe Qwen2 report spikes and
synaptic operations for every spiking layer, through OpenTelemetry.
The converted models hold no ``BaseNode``: their spiking layers are spikingjelly's
ann2snn encoders (``_STASpikeEncoder``, ``SignedQCFSSequenceEncoder``)."""

from __future__ import annotations

import math
import warnings

import pytest
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


def test_td_operators_charge_each_input_event_as_the_ann_op_they_stand_for():
    """SOPs of each ann2snn operator against counts made here from the real
    spikes: one per (input event, weight or operand element it meets), the
    convolutions' pairs by a convolution of the events with all-ones weights;
    the raw input's dense MACs; the events the combining operators emit."""
    import torch.nn.functional as F
    from spikingjelly.activation_based import functional

    from opentelemetry_instrumentation_spikeformer.monitor import monitor_model

    steps, batch, tokens, embed = 3, 2, 4, 6
    model = tm.TDOperators(embed)
    monitor = monitor_model(model, "m")
    x = torch.rand(steps, batch, tokens, embed, generator=torch.Generator().manual_seed(1)) * 2
    returned = {}
    handles = [getattr(model, name).register_forward_hook(
        lambda _m, _a, out, name=name: returned.__setitem__(name, out))
        for name in ("a", "b", "sdpa", "ew", "mm", "mm_raw")]
    with torch.no_grad():
        model(x)
    functional.reset_net(model)
    for handle in handles:
        handle.remove()
    snap = monitor.read(detail=True)
    monitor.detach()

    a, b = returned["a"], returned["b"]
    nnz = lambda t: float((t != 0).sum())  # noqa: E731
    ew_a, ew_b = a[..., :1], b[..., :1, :]
    out_shape = torch.broadcast_shapes(ew_a.shape, ew_b.shape)

    def flat(t):  # [T, B, C, H, W] -> [T * B, C, H, W]; a single step is 4-D already
        return t.flatten(0, 1) if t.dim() == 5 else t

    def conv_pairs(module, events):
        ones = torch.ones(module.weight.shape, dtype=torch.float64)
        return float(F.conv2d(flat(events != 0).double(), ones, None, module.stride,
                              module.padding, module.dilation, module.groups).sum())

    def conv_macs(module, t):
        ones = torch.ones(module.weight.shape, dtype=torch.float64)
        y = F.conv2d(torch.ones(flat(t).shape, dtype=torch.float64), ones, None,
                     module.stride, module.padding, module.dilation, module.groups)
        return float(y.numel() * ones[0].numel())

    image = a.reshape(steps, batch, 2, 4, -1)
    step = image[0]  # the single-step convolutions' input: one timestep
    raw, raw_step = x.reshape(image.shape), x[0].reshape(step.shape)
    expected = {  # (scope, input) -> (op, SOPs, dense MACs)
        ("lin", "a"): ("TDLinear", nnz(a) * 5, a.numel() * 5),
        ("mha", "a"): ("TDMultiheadAttention", nnz(a) * embed, a.numel() * embed),
        ("mha", "b"): ("TDMultiheadAttention", nnz(b) * embed * 2, b.numel() * embed * 2),
        ("mha_raw", "a"): ("TDMultiheadAttention", nnz(a) * embed * 2, a.numel() * embed * 2),
        ("mha_raw_kv", "a"): ("TDMultiheadAttention", nnz(a) * embed, a.numel() * embed),
        # the combining operators' dense MACs go with their first tracked operand
        ("sdpa", "q"): ("sdpa", nnz(a) * tokens, steps * batch * tokens * tokens * embed * 2),
        ("sdpa", "k"): ("sdpa", nnz(b) * tokens, 0), ("sdpa", "v"): ("sdpa", nnz(b) * tokens, 0),
        ("ew", "a"): ("ewise", float((ew_a != 0).expand(out_shape).sum()),
                      math.prod(out_shape)),
        ("ew", "b"): ("ewise", float((ew_b != 0).expand(out_shape).sum()), 0),
        ("mm", "a"): ("matmul", nnz(a) * tokens, steps * batch * tokens * embed * tokens),
        ("mm", "b"): ("matmul", nnz(b) * tokens, 0),
        ("mm_raw", "b"): ("matmul", nnz(b) * tokens, steps * batch * tokens * embed * tokens),
        ("same", "a"): ("TDConv2d", conv_pairs(model.same, image), conv_macs(model.same, image)),
        ("conv", "a"): ("TDConv2d", conv_pairs(model.conv, image), conv_macs(model.conv, image)),
        ("conv_s", "a"): ("TDConv2d", conv_pairs(model.conv_s, step),
                          conv_macs(model.conv_s, step)),
    }
    ours: dict = {}
    for c in snap["consumers"]:
        if c["kind"] == "linear":
            ours.setdefault(c["scope"], []).append((c["op"], c["synops"], c["dense_macs"]))
    by_scope: dict = {}
    for (scope, _), value in expected.items():
        by_scope.setdefault(scope, []).append(value)
    assert {s: sorted(v) for s, v in ours.items()} == {s: sorted(v) for s, v in by_scope.items()}
    assert all(v[1] > 0 for values in by_scope.values() for v in values)
    counts = snap["counts"]
    encoding = x.numel() * 3 + conv_macs(model.enc_conv, raw) \
        + conv_macs(model.enc_conv_s, raw_step) \
        + x.numel() * embed * 3  # mha_raw's query, mha_raw_kv's key and value (one tensor)
    assert counts["encoding_macs_every_step"] == encoding
    # inside each TDMultiheadAttention: Q·Kᵀ and ·V on the real projections, and
    # the output projection, at every step
    mha_inside = steps * batch * tokens * (tokens * embed * 2 + embed * embed)
    assert counts["graded_macs"] == a.numel() * 2 + 3 * mha_inside  # + tanh(spikes) into real_lin
    # the ANN each stands for, per sample: a sequence op's MACs over T x B rows, a
    # single-step op's over B
    sequence = sum(v[2] for (scope, _), v in expected.items() if scope != "conv_s") \
        + x.numel() * 3 + conv_macs(model.enc_conv, raw) + x.numel() * embed * 3 \
        + a.numel() * 2 + 3 * mha_inside
    single = conv_macs(model.conv_s, step) + conv_macs(model.enc_conv_s, raw_step)
    assert counts["ann_macs"] == pytest.approx(sequence / (steps * batch) + single / batch,
                                               rel=1e-12)
    rows = {r["layer"]: r for r in snap["layers"]}
    for name in ("a", "b", "sdpa", "ew", "mm", "mm_raw"):
        assert rows[name]["spikes"] == nnz(returned[name]) > 0, name
