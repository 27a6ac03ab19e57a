"""Every OTEL_PYTHON_SPIKEFORMER_* variable: a good value parsed, a bad value
-> one warning naming the variable and the default, never an exception."""

from __future__ import annotations

import logging

import pytest

from opentelemetry_instrumentation_spikeformer.core import settings as config

# option name -> (good raw value, parsed value, bad raw value or None when any text is valid)
CASES = {
    "extra_targets": ("a.b:f=conversion", "a.b:f=conversion", None),
    "layer_spans": ("off", False, "maybe"),
    "capture_memory": ("0", False, "2"),
    "max_models": ("20", 20, "0"),
    "spike_monitor": ("false", False, "nope"),
    "model_name": ("digits", "digits", None),
    "monitor_sample_every": ("10", 10, "0"),
    "timestep_ms": ("0.5", 0.5, "-1"),
    "max_layers": ("64", 64, "many"),
    "energy_hardware": ("spinnaker", "spinnaker", None),
    "energy_table": ('{"loihi2": {"synop_pj": 20}}', '{"loihi2": {"synop_pj": 20}}', None),
    "device_adapters": ("nvml, host", ("nvml", "host"), None),
    "device_poll_interval": ("2.5", 2.5, "fast"),
    "probe_timeout": ("0.5", 0.5, "0"),
    "rapl_root": ("/host/sys/class/powercap", "/host/sys/class/powercap", None),
    "spinnaker_host": ("192.168.240.1", "192.168.240.1", None),
    "health_server": ("yes", True, "sometimes"),
    "health_host": ("0.0.0.0", "0.0.0.0", None),
    "health_port": ("9000", 9000, "70000"),
    "monitor_ranks": ("8, 0,8", ("0", "8"), "first"),
    "flush_on_sigterm": ("true", True, "sometimes"),
    "log_format": (" JSON", "json", "xml"),
    "log_level": ("debug", "DEBUG", "loud"),
    "bench_interval": ("21600", 21600.0, "-5"),
    "bench_models": ("digits_cnn", ("digits_cnn",), None),
    "bench_frameworks": ("sinabs,spikingjelly", ("sinabs", "spikingjelly"), None),
    "bench_targets": ("loihi2, cmos45nm_int8", ("loihi2", "cmos45nm_int8"), None),
    "bench_timesteps": ("32, 4,8,4", (4, 8, 32), "1,2,3,4,5,6,7,8,9"),
}


def test_every_option_has_a_case():
    assert {opt.name for opt in config.OPTIONS} == set(CASES)


def test_env_names_and_defaults():
    for opt in config.OPTIONS:
        assert opt.env == "OTEL_PYTHON_SPIKEFORMER_" + opt.name.upper()
    settings = config.load_settings(environ={})
    assert {opt.name: getattr(settings, opt.name) for opt in config.OPTIONS} == {
        opt.name: opt.default for opt in config.OPTIONS}


@pytest.mark.parametrize("name", sorted(CASES))
def test_good_value(name):
    good, parsed, _bad = CASES[name]
    opt = config.option(name)
    assert getattr(config.load_settings(environ={opt.env: good}), name) == parsed


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c[2] is not None))
def test_bad_value_warns_once_and_uses_default(name, caplog):
    _good, _parsed, bad = CASES[name]
    opt = config.option(name)
    with caplog.at_level(logging.WARNING, logger=config.__name__):
        settings = config.load_settings(environ={opt.env: bad})
    assert getattr(settings, name) == opt.default
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    message = record.getMessage()
    assert opt.env in message and repr(bad) in message and repr(opt.default) in message
    assert "\n" not in message


def test_keyword_overrides_environment_and_is_validated(caplog):
    env = {"OTEL_PYTHON_SPIKEFORMER_MAX_LAYERS": "8", "OTEL_PYTHON_SPIKEFORMER_LAYER_SPANS": "false"}
    settings = config.load_settings({"max_layers": 16}, environ=env)
    assert settings.max_layers == 16 and settings.layer_spans is False
    settings = config.load_settings({"device_adapters": ["host", "rapl"]}, environ={})
    assert settings.device_adapters == ("host", "rapl")
    with caplog.at_level(logging.WARNING, logger=config.__name__):
        settings = config.load_settings({"timestep_ms": 0}, environ={})
    assert settings.timestep_ms == 1.0
    assert "instrument(timestep_ms=0)" in caplog.text


def test_empty_value_means_default():
    settings = config.load_settings(environ={"OTEL_PYTHON_SPIKEFORMER_HEALTH_PORT": ""})
    assert settings.health_port == 8099


def test_bad_env_value_never_stops_instrumentation(monkeypatch, instrument, otel, caplog):
    monkeypatch.setenv("OTEL_PYTHON_SPIKEFORMER_LAYER_SPANS", "perhaps")
    monkeypatch.setenv("OTEL_PYTHON_SPIKEFORMER_MAX_LAYERS", "-3")
    with caplog.at_level(logging.WARNING):
        inst = instrument()
    assert inst.telemetry.settings.layer_spans is True
    assert "OTEL_PYTHON_SPIKEFORMER_LAYER_SPANS" in caplog.text
