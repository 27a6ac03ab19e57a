"""Model identity (issue 11, item 6): every monitored model has a stable,
distinct and bounded ``model_name``; the conversion metrics' ``model_type`` is
bounded the same way."""

from __future__ import annotations

import gc

import sinabs
import torch
from models import INPUT_SHAPE, tiny_cnn


def convert():
    return sinabs.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1).spiking_model


def names_of(models):
    from opentelemetry_instrumentation_spikeformer.monitor.spike_monitor import monitors_of

    return [monitors_of(m)[0].name for m in models]


def run(model):
    with torch.no_grad():
        model(torch.rand(1, *INPUT_SHAPE))


def energy_series(otel):
    return sorted(p.attributes["model_name"] for p in otel.points("spike_compiler.energy_estimate"))


def test_two_live_models_of_one_class_get_two_energy_series(instrument, otel):
    """The demo converts two ``Sequential``\\ s: each keeps its own series."""
    instrument()
    first, second = convert(), convert()
    assert names_of([first, second]) == ["Sequential", "Sequential#2"]
    run(first), run(second)
    assert energy_series(otel) == ["Sequential", "Sequential#2"]


def test_names_are_stable_and_freed_with_their_model(instrument, otel):
    instrument()
    first, second = convert(), convert()
    del first
    gc.collect()
    third = convert()
    assert names_of([second, third]) == ["Sequential#2", "Sequential"]
    from opentelemetry_instrumentation_spikeformer.monitor import monitor_model

    again = monitor_model(second, meter_provider=otel.meter_provider)  # same model, same name
    assert again.name == "Sequential#2"


def test_model_name_setting_and_explicit_name(instrument, otel):
    from opentelemetry_instrumentation_spikeformer.monitor import monitor_model

    instrument(model_name="digits")
    a, b = convert(), convert()
    assert names_of([a, b]) == ["digits", "digits#2"]
    plain = sinabs.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1)
    instrument(spike_monitor=False)
    mine = monitor_model(plain.spiking_model, "cnn", meter_provider=otel.meter_provider)
    assert mine.name == "cnn"


def test_names_beyond_the_cap_fold_into_other(instrument, otel):
    instrument(max_models=3)
    models = [convert() for _ in range(5)]
    assert names_of(models) == ["Sequential", "Sequential#2", "Sequential#3", "other", "other"]
    for model in models:
        run(model)
    assert energy_series(otel) == ["Sequential", "Sequential#2", "Sequential#3", "other"]


def test_conversion_model_type_of_dynamic_classes_is_bounded(instrument, otel):
    """One class per conversion (a sweep building classes on the fly) makes at
    most ``max_models`` label values, then ``other``."""
    import torch.nn as nn

    instrument(max_models=4)
    for i in range(10):
        ann = type(f"Net{i}", (nn.Sequential,), {})(*tiny_cnn())
        sinabs.from_model(ann, input_shape=INPUT_SHAPE, batch_size=1)
    types = {p.attributes["model_type"] for p in otel.points("spikeformer.conversions")}
    assert types == {"Net0", "Net1", "Net2", "Net3", "other"}
    monitored = {p.attributes["model_name"] for p in otel.points("neural.spikes")}
    assert len(monitored) <= 5
