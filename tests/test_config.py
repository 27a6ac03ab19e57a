"""Every OTEL_PYTHON_SPIKEFORMER_* variable: a good value parsed, a bad value
-> one warning naming the variable and the default, never an exception."""

from __future__ import annotations

import logging
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
    "log_format": (" Text", "text", "xml"),
    "log_level": ("debug", "DEBUG", "loud"),
    "bench_interval": ("21600", 21600.0, "-5"),
    "bench_models": ("digits_cnn", ("digits_cnn",), None),
    "bench_frameworks": ("spikingjelly ,sinabs", ("spikingjelly", "sinabs"), None),
    "bench_targets": ("loihi2, cmos45nm_int8", ("loihi2", "cmos45nm_int8"), None),
    "bench_timesteps": ("32, 4,8,4", (4, 8, 32), "1,2,3,4,5,6,7,8,9"),
}

# numeric settings: (cast, minimum, maximum) as documented
NUMBERS = {
    "monitor_sample_every": (int, 1, 1_000_000), "timestep_ms": (float, 1e-6, 1e6),
    "max_layers": (int, 1, 4096), "device_poll_interval": (float, 0.05, 86_400.0),
    "probe_timeout": (float, 0.01, 600.0), "health_port": (int, 0, 65535),
    "bench_interval": (float, 0.0, 604_800.0),
}


def test_every_option_has_a_case():
    assert {opt.name for opt in config.OPTIONS} == set(CASES)


# The documented defaults (README's configuration table), written out here.
DEFAULTS = {
    "extra_targets": "", "layer_spans": True, "capture_memory": True, "spike_monitor": True,
    "max_models": 50, "model_name": "",
    "monitor_sample_every": 1, "timestep_ms": 1.0, "max_layers": 256,
    "energy_hardware": "cmos45nm", "energy_table": "", "device_adapters": (),
    "device_poll_interval": 5.0, "probe_timeout": 2.0, "rapl_root": "/sys/class/powercap",
    "spinnaker_host": "", "health_server": False, "health_host": "127.0.0.1",
    "health_port": 8099, "monitor_ranks": ("all",), "flush_on_sigterm": False,
    "log_format": "json", "log_level": "INFO", "bench_interval": 0.0,
    "bench_models": ("digits_cnn", "digits_mlp", "digits_vit", "digits_spikformer", "digits_sdt"),
    "bench_frameworks": ("sinabs", "spikingjelly", "spikingjelly_sta", "spikingjelly_td"),
    "bench_targets": ("cmos45nm", "loihi"), "bench_timesteps": (4, 8, 16, 32),
}


def test_env_names_and_defaults():
    for opt in config.OPTIONS:
        assert opt.env == "OTEL_PYTHON_SPIKEFORMER_" + opt.name.upper()
    settings = config.load_settings(environ={})
    assert {opt.name: getattr(settings, opt.name) for opt in config.OPTIONS} == DEFAULTS


@pytest.mark.parametrize("name", sorted(CASES))
def test_good_value(name):
    good, parsed, _bad = CASES[name]
    assert parsed != DEFAULTS[name]  # else a fallback to the default would pass too
    opt = config.option(name)
    assert getattr(config.load_settings(environ={opt.env: good}), name) == parsed


# what the warning says about each bad value of CASES
REASONS = {
    "layer_spans": "expected true/false", "capture_memory": "expected true/false",
    "spike_monitor": "expected true/false", "health_server": "expected true/false",
    "monitor_sample_every": "expected an integer between 1 and 1e+06",
    "timestep_ms": "expected a number of milliseconds between 1e-06 and 1e+06",
    "max_layers": "expected an integer", "device_poll_interval": "expected seconds",
    "probe_timeout": "expected seconds between 0.01 and 600",
    "health_port": "expected a port number between 0 and 65535",
    "log_format": "expected one of json, text, none",
    "log_level": "expected a logging level (debug, info, warning, error, critical)",
    "bench_interval": "expected seconds between 0 and 604800",
    "bench_timesteps": "expected at most 8 values",
    "max_models": "expected an integer between 1 and 10000",
    "monitor_ranks": "expected `all` or a comma list of ranks",
    "flush_on_sigterm": "expected true/false",
}


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c[2] is not None))
def test_bad_value_warns_once_and_uses_default(name, caplog):
    _good, _parsed, bad = CASES[name]
    opt = config.option(name)
    with caplog.at_level(logging.WARNING, logger=config.__name__):
        settings = config.load_settings(environ={opt.env: bad})
    assert getattr(settings, name) == DEFAULTS[name]
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert record.getMessage() == (
        f"{opt.env}={bad!r} is invalid ({REASONS[name]}); using default {DEFAULTS[name]!r}")


def test_keyword_overrides_environment_and_is_validated(caplog):
    env = {"OTEL_PYTHON_SPIKEFORMER_MAX_LAYERS": "8", "OTEL_PYTHON_SPIKEFORMER_LAYER_SPANS": "false"}
    settings = config.load_settings({"max_layers": 16}, environ=env)
    assert settings.max_layers == 16 and settings.layer_spans is False
    settings = config.load_settings({"device_adapters": ["host", "rapl"]}, environ={})
    assert settings.device_adapters == ("host", "rapl")
    with caplog.at_level(logging.WARNING, logger=config.__name__):
        settings = config.load_settings({"timestep_ms": 0}, environ={})
    assert settings.timestep_ms == 1.0
    assert [r.getMessage() for r in caplog.records] == [
        "instrument(timestep_ms=0) is invalid (expected a number of milliseconds between 1e-06 "
        "and 1e+06); using default 1.0"]


def test_empty_value_means_default_without_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger=config.__name__):
        settings = config.load_settings(environ={"OTEL_PYTHON_SPIKEFORMER_HEALTH_PORT": ""})
    assert settings.health_port == 8099 and caplog.records == []


def test_bad_env_value_never_stops_instrumentation(monkeypatch, instrument, otel, caplog):
    monkeypatch.setenv("OTEL_PYTHON_SPIKEFORMER_LAYER_SPANS", "perhaps")
    monkeypatch.setenv("OTEL_PYTHON_SPIKEFORMER_MAX_LAYERS", "-3")
    with caplog.at_level(logging.WARNING):
        inst = instrument()
    assert inst.telemetry.settings.layer_spans is True
    assert "OTEL_PYTHON_SPIKEFORMER_LAYER_SPANS" in caplog.text


def test_monitor_ranks_all_in_any_case_and_what_a_bad_list_hears():
    for text in ("all", " All", "ALL"):
        assert config.parse_ranks(text) == ("all",)
    with pytest.raises(config.BadValue, match="^expected `all` or ranks >= 0$"):
        config.parse_ranks("0,-1")
    with pytest.raises(config.BadValue, match="^expected `all` or ranks >= 0$"):
        config.parse_ranks(" , ")
    with pytest.raises(config.BadValue, match="^expected `all` or a comma list of ranks$"):
        config.parse_ranks("0,one")


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


@pytest.mark.parametrize("name", sorted(NUMBERS))
def test_number_limits_are_inclusive(name):
    cast, low, high = NUMBERS[name]
    parse = config.option(name).parse
    assert parse(repr(low)) == low and parse(repr(high)) == high
    if cast is int:
        below, above = low - 1, high + 1
    else:
        below, above = math.nextafter(low, -math.inf), math.nextafter(high, math.inf)
    for outside in (repr(below), repr(above), "nan", "inf", "-inf"):
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
    ("0", "expected integers >= 1"), ("-4,8", "expected integers >= 1"),
    ("", "expected integers >= 1"), (",", "expected integers >= 1"),
    ("4,x", "expected a comma list of integers"), ("1.5", "expected a comma list of integers"),
    ("1,2,3,4,5,6,7,8,9", "expected at most 8 values"),
])
def test_timesteps_sweep(text, expected):
    if isinstance(expected, str):
        with pytest.raises(config.BadValue) as bad:
            config.parse_timesteps(text)
        assert str(bad.value) == expected
    else:
        assert config.parse_timesteps(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("10", 10), ("0", 0), ("warning", "WARNING"), (" Error ", "ERROR"), ("CRITICAL", "CRITICAL"),
    ("²", None), ("-1", None), ("verbose", None), ("", None),
])
def test_log_levels(text, expected):
    if expected is None:
        with pytest.raises(config.BadValue) as bad:
            config.parse_level(text)
        assert str(bad.value) == "expected a logging level (debug, info, warning, error, critical)"
    else:
        assert config.parse_level(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("1", True), ("TRUE", True), (" yes", True), ("On", True),
    ("0", False), ("False", False), ("no ", False), ("OFF", False),
])
def test_booleans(text, expected):
    assert config.parse_bool(text) is expected


def test_a_keyword_list_for_a_single_value_is_bad(caplog):
    with caplog.at_level(logging.WARNING, logger=config.__name__):
        assert config.load_settings({"health_port": [9000]}, environ={}).health_port == 8099
    assert "instrument(health_port=[9000]) is invalid" in caplog.text


def test_keyword_lists_and_values_that_are_not_settings():
    settings = config.load_settings({"bench_timesteps": [16, 4], "not_a_setting": 3,
                                     "health_port": 65535}, environ={})
    assert settings.bench_timesteps == (4, 16) and settings.health_port == 65535
    assert not hasattr(settings, "not_a_setting")
    env = {"OTEL_PYTHON_SPIKEFORMER_HEALTH_PORT": "   "}
    assert config.load_settings(environ=env).health_port == 8099


# -- properties -----------------------------------------------------------------
ANY_TEXT = st.text(st.characters(codec="utf-8"), max_size=30) | st.sampled_from(
    ["nan", "-inf", "1e400", "0x10", "1_000", " 7 ", "+3", "1e-7", "²", "٣", "True"])


@given(name=st.sampled_from(sorted(CASES)), text=ANY_TEXT)
def test_any_text_parses_within_bounds_or_is_a_bad_value(name, text):
    parse = config.option(name).parse
    try:
        value = parse(text)
    except config.BadValue:
        return
    if name in NUMBERS:
        cast, low, high = NUMBERS[name]
        assert type(value) is cast and low <= value <= high and math.isfinite(value)
    elif name == "bench_timesteps":
        assert 1 <= len(value) <= 8 and list(value) == sorted(set(value)) and value[0] >= 1
    elif name == "log_format":
        assert value in ("json", "text", "none")
    elif name == "log_level":
        assert isinstance(value, int) or value in logging.getLevelNamesMapping()
    elif isinstance(DEFAULTS[name], tuple):
        assert all(item and item == item.strip() and "," not in item for item in value)
    else:
        assert type(value) is type(DEFAULTS[name])


@given(environ=st.dictionaries(st.sampled_from(sorted(o.env for o in config.OPTIONS)), ANY_TEXT))
def test_any_environment_loads(environ):
    settings = config.load_settings(environ=environ)
    for name, (cast, low, high) in NUMBERS.items():
        assert low <= getattr(settings, name) <= high


@given(name=st.sampled_from(sorted(NUMBERS)), data=st.data())
def test_numbers_round_trip(name, data):
    cast, low, high = NUMBERS[name]
    if cast is int:
        value = data.draw(st.integers(low, high))
    else:
        value = data.draw(st.floats(low, high, allow_nan=False))
    assert config.option(name).parse(repr(value)) == value
    assert config.option(name).parse(f"  {value}\t") == value


@given(name=st.sampled_from(sorted(NUMBERS)), data=st.data())
def test_numbers_outside_the_range_are_bad(name, data):
    cast, low, high = NUMBERS[name]
    if cast is int:
        value = data.draw(st.integers(max_value=low - 1) | st.integers(min_value=high + 1))
    else:
        value = data.draw(st.floats(max_value=low, exclude_max=True)
                          | st.floats(min_value=high, exclude_min=True))
    with pytest.raises(config.BadValue):
        config.option(name).parse(repr(value))


ITEM = st.text(st.characters(codec="ascii", exclude_characters=","), min_size=1).map(
    str.strip).filter(bool)


@given(items=st.lists(ITEM, max_size=6), pad=st.sampled_from(["", " ", "  ,"]))
def test_lists_round_trip(items, pad):
    assert config.parse_list(pad.join(f"{item}," for item in items)) == tuple(items)


@given(values=st.sets(st.integers(1, 10**6), min_size=1, max_size=8),
       repeats=st.integers(1, 3))
def test_timesteps_round_trip(values, repeats):
    text = ",".join(str(v) for v in sorted(values, reverse=True) * repeats)
    assert config.parse_timesteps(text) == tuple(sorted(values))


@given(word=st.sampled_from(["1", "true", "yes", "on", "0", "false", "no", "off"]),
       case=st.lists(st.booleans(), min_size=5, max_size=5), pad=st.text(" \t", max_size=2))
def test_booleans_in_any_case(word, case, pad):
    mixed = "".join(c.upper() if up else c for c, up in zip(word, case))
    assert config.parse_bool(pad + mixed + pad) is (word in ("1", "true", "yes", "on"))


@given(level=st.sampled_from(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]),
       number=st.integers(0, 10**6))
def test_levels_round_trip(level, number):
    assert config.parse_level(level.lower()) == level
    assert config.parse_level(str(number)) == number
