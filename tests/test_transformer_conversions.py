"""Spans of spikingjelly's transformer recipes on real conversions: STA and
TD-equivalent (FX converter), SpikeZIP and Qwen2 (module converter, with
``calibrate_qwen2_snn``). Expected shapes come from each model's own config."""

from __future__ import annotations

import warnings

import pytest

import torch
import spikingjelly  # noqa: F401

import transformer_models as tm  # noqa: E402

FX_STAGES = ["validate", "before_trace", "after_trace", "insert_observers", "replace", "finalize"]
DIM, HEADS, BLOCKS = 16, 4, 2  # the test ViT's shape


def _only(spans, name):
    (span,) = [s for s in spans if s.name == name]
    return span


def _children(spans, parent):
    return [s for s in spans if s.parent and s.parent.span_id == parent.context.span_id]


def _shape(span):
    prefix = "spikeformer.model.transformer."
    return {k[len(prefix):]: v for k, v in span.attributes.items() if k.startswith(prefix)}


def _quiet(convert):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert()


@pytest.mark.parametrize("mode", ["spiking_encoder", "equivalent"])
def test_sta_transformer_recipe(instrument, otel, mode):
    instrument()
    from spikingjelly.activation_based import ann2snn

    loader = [(tm.images(8), torch.zeros(8)), (tm.images(4, seed=1), torch.zeros(4))]
    recipe = ann2snn.STATransformerRecipe(dataloader=loader, time_steps=4, mode=mode)
    snn = _quiet(lambda: ann2snn.Converter(recipe).convert(tm.TinyViT(DIM, HEADS, BLOCKS)))
    spans = otel.spans()
    conv = _only(spans, "spikeformer.convert spikingjelly")
    assert conv.attributes["spikeformer.recipe"] == "STATransformerRecipe"
    assert conv.attributes["spikeformer.recipe.mode"] == mode
    assert conv.attributes["spikeformer.snn.timesteps"] == 4
    assert conv.attributes["spikeformer.model.type"] == "TinyViT"
    assert _shape(conv) == {"layers": BLOCKS, "heads": HEADS, "embed_dim": DIM}
    children = _children(spans, conv)
    assert [s.name.split(" ", 1)[-1] for s in children if s.name.startswith("spikeformer.stage")
            ] == FX_STAGES
    calib = _only(children, "spikeformer.calibrate")
    # spiking_encoder calibrates thresholds on every batch; equivalent runs none
    seen = (12, 2) if mode == "spiking_encoder" else (0, 0)
    assert (calib.attributes["spikeformer.calibration.samples"],
            calib.attributes["spikeformer.calibration.batches"]) == seen
    assert otel.value("spikeformer.conversions", framework="spikingjelly",
                      model_type="TinyViT") == 1
    # the user's result is what spikingjelly made: time_steps set by finalize
    assert snn.time_steps == 4


def test_transformer_td_equivalent_recipe(instrument, otel):
    instrument()
    from spikingjelly.activation_based import ann2snn

    vit = tm.TinyViT(8, 2, 3)
    x = tm.images(2)
    snn = ann2snn.Converter(ann2snn.TransformerTDEquivalentRecipe(time_steps=4)).convert(vit)
    ann2snn.Converter("transformer_td_equivalent").convert(tm.TinyViT(8, 2, 1))
    first, second = otel.spans("spikeformer.convert spikingjelly")
    assert first.attributes["spikeformer.recipe"] == "TransformerTDEquivalentRecipe"
    assert first.attributes["spikeformer.snn.timesteps"] == 4
    assert _shape(first) == {"layers": 3, "heads": 2, "embed_dim": 8}
    assert "spikeformer.recipe.mode" not in first.attributes
    # the string alias: no T configured, so none is reported
    assert "spikeformer.snn.timesteps" not in second.attributes
    assert _shape(second) == {"layers": 1, "heads": 2, "embed_dim": 8}
    stages = [s.name.split(" ", 1)[-1] for s in _children(otel.spans(), first)]
    assert stages == FX_STAGES[:4] + ["spikeformer.calibrate"] + FX_STAGES[4:]
    with torch.no_grad():  # still spikingjelly's equivalent network
        out = snn(tm.first_real_then_zero(x, 4)).sum(0)
        assert torch.allclose(out, vit(x), atol=1e-5)


def test_qwen2_calibration_and_conversion(instrument, otel):
    import transformers  # noqa: F401
    instrument()
    from opentelemetry import trace
    from spikingjelly.activation_based.ann2snn import (ModuleConverter, Qwen2SNNConfig,
                                                       Qwen2SNNRecipe, calibrate_qwen2_snn)

    ann, config = tm.tiny_qwen2(layers=2)
    snn_config = Qwen2SNNConfig(time_steps=4, calibration_levels=4)
    tracer = otel.tracer_provider.get_tracer("user")
    with tracer.start_as_current_span("pipeline") as pipeline:
        calibration = calibrate_qwen2_snn(ann, tm.token_batches(config, 3, 2), snn_config)
        snn = _quiet(lambda: ModuleConverter(Qwen2SNNRecipe(calibration, snn_config)).convert(ann))
    assert type(snn).__name__ == "Qwen2SNNModel"
    spans = otel.spans()
    pipe = _only(spans, "pipeline")
    calib = _only(spans, "spikeformer.calibrate")
    conv = _only(spans, "spikeformer.convert spikingjelly")
    assert {s.name for s in _children(spans, pipe)} == {calib.name, conv.name}
    expected = {"layers": config.num_hidden_layers, "heads": config.num_attention_heads,
                "kv_heads": config.num_key_value_heads, "embed_dim": config.hidden_size}
    for span in (calib, conv):
        assert _shape(span) == expected
        assert span.attributes["spikeformer.model.type"] == "Qwen2ForCausalLM"
        assert span.attributes["spikeformer.snn.timesteps"] == 4
    assert calib.attributes["spikeformer.calibration.batches"] == 3
    assert calib.attributes["spikeformer.calibration.samples"] == 3 * 2
    assert calib.attributes["code.function.name"].endswith("qwen2.calibrate_qwen2_snn")
    assert conv.attributes["spikeformer.recipe"] == "Qwen2SNNRecipe"
    assert [s.name for s in _children(spans, conv)] == [
        "spikeformer.stage validate", "spikeformer.stage convert_module"]
    assert otel.value("spikeformer.conversions", framework="spikingjelly",
                      model_type="Qwen2ForCausalLM") == 1
    # calibrating on its own is a span too (a root one), and counts no conversion
    calibrate_qwen2_snn(ann, tm.token_batches(config, 1, 5), snn_config)
    alone = [s for s in otel.spans("spikeformer.calibrate") if s.parent is None]
    assert len(alone) == 1 and alone[0].attributes["spikeformer.calibration.samples"] == 5
    assert otel.value("spikeformer.conversions", framework="spikingjelly") == 1
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_qwen2_conversion_error_is_recorded(instrument, otel):
    """A calibration for another T is refused by the recipe's validate stage."""
    import transformers  # noqa: F401
    instrument()
    from spikingjelly.activation_based.ann2snn import (ModuleConverter, Qwen2SNNConfig,
                                                       Qwen2SNNRecipe, calibrate_qwen2_snn)

    ann, config = tm.tiny_qwen2(layers=1)
    calibration = calibrate_qwen2_snn(ann, tm.token_batches(config, 1, 2),
                                      Qwen2SNNConfig(time_steps=4, calibration_levels=4))
    with pytest.raises(ValueError, match="time_steps does not match"):
        ModuleConverter(Qwen2SNNRecipe(calibration, Qwen2SNNConfig(time_steps=8, calibration_levels=4))
                        ).convert(ann)
    conv = _only(otel.spans(), "spikeformer.convert spikingjelly")
    validate = _only(otel.spans(), "spikeformer.stage validate")
    assert conv.attributes["spikeformer.snn.timesteps"] == 8
    for span in (conv, validate):
        assert span.status.status_code.name == "ERROR"
        assert span.attributes["error.type"] == "ValueError"
    assert otel.value("spikeformer.conversion.errors", framework="spikingjelly") == 1


def test_spikezip_qann_recipe(instrument, otel):
    from spikingjelly.activation_based.ann2snn.examples import (
        roberta_spikezip_qann_synthetic as example,
    )
    instrument()
    from spikingjelly.activation_based.ann2snn import ModuleConverter, SpikeZIPTFQANNRecipe

    torch.manual_seed(0)
    qann = example.TinyQRobertaClassifier(vocab_size=32, hidden_size=24, num_heads=3, level=8)
    ModuleConverter(SpikeZIPTFQANNRecipe(time_steps=8, model_family="roberta")).convert(qann)
    conv = _only(otel.spans(), "spikeformer.convert spikingjelly")
    assert conv.attributes["spikeformer.recipe"] == "SpikeZIPTFQANNRecipe"
    assert conv.attributes["spikeformer.recipe.mode"] == "roberta"
    assert conv.attributes["spikeformer.snn.timesteps"] == 8
    assert _shape(conv) == {"layers": 1, "heads": 3, "embed_dim": 24}
    assert [s.name for s in _children(otel.spans(), conv)] == [
        "spikeformer.stage validate", "spikeformer.stage convert_module"]


def test_layer_spans_off_leaves_only_the_conversion_spans(instrument, otel):
    import transformers  # noqa: F401
    instrument(layer_spans=False)
    from spikingjelly.activation_based.ann2snn import (ModuleConverter, Qwen2SNNConfig,
                                                       Qwen2SNNRecipe, calibrate_qwen2_snn)

    ann, config = tm.tiny_qwen2(layers=1)
    snn_config = Qwen2SNNConfig(time_steps=2, calibration_levels=2)
    calibration = calibrate_qwen2_snn(ann, tm.token_batches(config, 1, 2), snn_config)
    ModuleConverter(Qwen2SNNRecipe(calibration, snn_config)).convert(ann)
    assert [s.name for s in otel.spans()] == ["spikeformer.convert spikingjelly"]


def test_transformer_shape_is_left_out_where_blocks_disagree():
    from opentelemetry_instrumentation_spikeformer.core.model_info import transformer_shape

    nn = torch.nn
    mixed = nn.Sequential(nn.MultiheadAttention(8, 2), nn.MultiheadAttention(8, 4))
    assert transformer_shape(mixed) == {"layers": 2}  # heads differ: not one number
    assert transformer_shape(nn.Linear(2, 2)) == {}
    assert transformer_shape({"config": None}) == {}
