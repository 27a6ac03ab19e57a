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
    "spike_monitor": ("false", False, "nope"),
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


# The documented defaults (README's configuration table), written out here.
DEFAULTS = {
    "extra_targets": "", "layer_spans": True, "capture_memory": True, "spike_monitor": True,
    "monitor_sample_every": 1, "timestep_ms": 1.0, "max_layers": 256,
    "energy_hardware": "loihi2", "energy_table": "", "device_adapters": (),
    "device_poll_interval": 5.0, "probe_timeout": 2.0, "rapl_root": "/sys/class/powercap",
    "spinnaker_host": "", "health_server": False, "health_host": "127.0.0.1",
    "health_port": 8099, "log_format": "json", "log_level": "INFO", "bench_interval": 0.0,
    "bench_models": ("digits_cnn", "digits_mlp"), "bench_frameworks": ("sinabs", "spikingjelly"),
    "bench_targets": ("cmos45nm", "loihi2"), "bench_timesteps": (4, 8, 16, 32),
}


def test_env_names_and_defaults():
    for opt in config.OPTIONS:
        assert opt.env == "OTEL_PYTHON_SPIKEFORMER_" + opt.name.upper()
    settings = config.load_settings(environ={})
    assert {opt.name: getattr(settings, opt.name) for opt in config.OPTIONS} == DEFAULTS


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
    assert getattr(settings, name) == DEFAULTS[name]
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    message = record.getMessage()
    assert opt.env in message and repr(bad) in message and repr(DEFAULTS[name]) in message
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


@pytest.mark.parametrize("text,expected", [
    ("0", 0), ("1", 1), ("65535", 65535), (" 8099 ", 8099),
    ("-1", None), ("65536", None), ("80.0", None), ("", None), ("http", None),
])
def test_port_limits(text, expected):
    if expected is None:
        with pytest.raises(config.BadValue, match="port number"):
            config.parse_port(text)
    else:
        assert config.parse_port(text) == expected


@pytest.mark.parametrize("name,low,high,below,above", [
    ("monitor_sample_every", "1", "1000000", "0", "1000001"),
    ("max_layers", "1", "4096", "0", "4097"),
    ("timestep_ms", "1e-6", "1e6", "9e-7", "1000001"),
    ("device_poll_interval", "0.05", "86400", "0.049", "86401"),
    ("probe_timeout", "0.01", "600", "0.009", "600.5"),
    ("bench_interval", "0", "604800", "-0.001", "604801"),
])
def test_number_limits_are_inclusive(name, low, high, below, above):
    parse = config.option(name).parse
    assert parse(low) == float(low) and parse(high) == float(high)
    for outside in (below, above, "nan", "inf"):
        with pytest.raises(config.BadValue):
            parse(outside)


def test_bad_number_messages_name_what_was_expected():
    with pytest.raises(config.BadValue, match="^expected a port number between 0 and 65535$"):
        config.parse_port("65536")
    with pytest.raises(config.BadValue, match="^expected a port number$"):
        config.parse_port("x")
    with pytest.raises(config.BadValue, match="^expected a finite seconds$"):
        config.option("probe_timeout").parse("nan")


@pytest.mark.parametrize("text,expected", [
    ("1", (1,)), ("8,7,6,5,4,3,2,1", (1, 2, 3, 4, 5, 6, 7, 8)), ("3, 3 ,3", (3,)),
    ("0", None), ("-4,8", None), ("", None), (",", None), ("4,x", None), ("1.5", None),
    ("1,2,3,4,5,6,7,8,9", None),
])
def test_timesteps_sweep(text, expected):
    if expected is None:
        with pytest.raises(config.BadValue):
            config.parse_timesteps(text)
    else:
        assert config.parse_timesteps(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("10", 10), ("0", 0), ("warning", "WARNING"), (" Error ", "ERROR"), ("CRITICAL", "CRITICAL"),
    ("²", None), ("-1", None), ("verbose", None), ("", None),
])
def test_log_levels(text, expected):
    if expected is None:
        with pytest.raises(config.BadValue):
            config.parse_level(text)
    else:
        assert config.parse_level(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("1", True), ("TRUE", True), (" yes", True), ("On", True),
    ("0", False), ("False", False), ("no ", False), ("OFF", False),
])
def test_booleans(text, expected):
    assert config.parse_bool(text) is expected


def test_keyword_lists_and_values_that_are_not_settings():
    settings = config.load_settings({"bench_timesteps": [16, 4], "not_a_setting": 3,
                                     "health_port": 65535}, environ={})
    assert settings.bench_timesteps == (4, 16) and settings.health_port == 65535
    assert not hasattr(settings, "not_a_setting")
    env = {"OTEL_PYTHON_SPIKEFORMER_HEALTH_PORT": "   "}
    assert config.load_settings(environ=env).health_port == 8099
