"""Every ``OTEL_PYTHON_SPIKEFORMER_*`` setting in one table.

Each option can also be passed to ``SpikeformerInstrumentor().instrument(**kwargs)``
under its keyword name (keywords win over the environment). A bad value never
stops start-up: it logs one warning naming the variable and the default used.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

_LOG = logging.getLogger(__name__)
PREFIX = "OTEL_PYTHON_SPIKEFORMER_"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class BadValue(ValueError):
    """A setting that cannot be parsed; the message says what was expected."""


def parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise BadValue("expected true/false")


def _number(cast: Callable[[str], Any], minimum: float | None, what: str):
    def parse(text: str):
        try:
            value = cast(text.strip())
        except ValueError:
            raise BadValue(f"expected {what}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise BadValue(f"expected a finite {what}")
        if minimum is not None and value < minimum:
            raise BadValue(f"expected {what} >= {minimum:g}")
        return value

    return parse


parse_positive_int = _number(int, 1, "an integer")


def parse_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def parse_timesteps(text: str) -> tuple[int, ...]:
    """Distinct positive timestep counts, sorted; at most ``MAX_SWEEP_TIMESTEPS``
    (each becomes a metric attribute value)."""
    from .semconv import MAX_SWEEP_TIMESTEPS

    try:
        values = sorted({int(item) for item in parse_list(text)})
    except ValueError:
        raise BadValue("expected a comma list of integers") from None
    if not values or values[0] < 1:
        raise BadValue("expected integers >= 1")
    if len(values) > MAX_SWEEP_TIMESTEPS:
        raise BadValue(f"expected at most {MAX_SWEEP_TIMESTEPS} values")
    return tuple(values)


def parse_port(text: str) -> int:
    value = _number(int, 0, "a port number")(text)
    if value > 65535:
        raise BadValue("expected a port number <= 65535")
    return value


def parse_choice(*choices: str) -> Callable[[str], str]:
    """One of ``choices`` (case-insensitive); the empty string always passes."""
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value and value not in choices:
            raise BadValue("expected one of " + ", ".join(choices))
        return value

    return parse


def parse_level(text: str) -> int | str:
    """A logging level: a number (``20``) or a known name (``info`` -> ``"INFO"``)."""
    value = text.strip().upper()
    if value.isdigit():
        return int(value)
    if not isinstance(logging.getLevelName(value), int):
        raise BadValue("expected a logging level (debug, info, warning, error, critical)")
    return value


@dataclass(frozen=True)
class Option:
    """One setting: keyword name, parser, default and the README line."""

    name: str
    parse: Callable[[str], Any]
    default: Any
    doc: str

    @property
    def env(self) -> str:
        return PREFIX + self.name.upper()


OPTIONS: tuple[Option, ...] = (
    Option("extra_targets", str, "",
           "More patch targets: `pkg.mod:Class.method=conversion,...` "
           "(operation: conversion, compilation, export, deployment)"),
    Option("layer_spans", parse_bool, True,
           "Child spans per converted layer and per converter stage"),
    Option("capture_memory", parse_bool, True,
           "Measure peak RSS growth during compilations"),
    Option("spike_monitor", parse_bool, True,
           "Attach the spike/energy monitor to models returned by conversions"),
    Option("monitor_sample_every", parse_positive_int, 1,
           "Monitor one forward pass in N"),
    Option("timestep_ms", _number(float, 1e-9, "a positive number"), 1.0,
           "Length of one SNN timestep in ms, for rates in Hz"),
    Option("max_layers", parse_positive_int, 256,
           "Layers per model with their own label; the rest fold into one `other` layer"),
    Option("energy_hardware", str, "loihi2",
           "Energy table used for estimates when the target is not known"),
    Option("energy_table", str, "",
           "Per-operation energy overrides: JSON object or path to a JSON file"),
    Option("device_adapters", parse_list, (),
           "Device adapters to enable (comma list; named ones are required by health checks; "
           "empty: every adapter that finds a device; `none`: no polling)"),
    Option("device_poll_interval", _number(float, 0.05, "seconds"), 5.0,
           "Seconds between device probes (probes run off the collection thread)"),
    Option("probe_timeout", _number(float, 0.01, "seconds"), 2.0,
           "Seconds before a device probe counts as failed"),
    Option("rapl_root", str, "/sys/class/powercap",
           "Powercap tree the `rapl` adapter reads (e.g. the host's, mounted into a container)"),
    Option("spinnaker_host", str, "",
           "SpiNNaker board address to probe"),
    Option("health_server", parse_bool, False,
           "Serve /health and /health/detailed over HTTP"),
    Option("health_host", str, "127.0.0.1", "Bind address of the health server"),
    Option("health_port", parse_port, 8099, "Port of the health server (0: any free port)"),
    Option("log_format", parse_choice("json", "text", "none"), "",
           "Configure the root logger at start-up: `json` lines or `text` on stderr, or "
           "`none` (no console handler, only level, OTel logs bridge and log counter); "
           "empty: leave logging alone"),
    Option("log_level", parse_level, "INFO",
           "Root logger level set when `log_format` is set"),
    Option("bench_interval", _number(float, 0, "seconds"), 0.0,
           "`spikeformer-otel bench`: seconds between runs (start to start); 0: one run, "
           "print the table, exit"),
    Option("bench_models", parse_list, ("digits_cnn", "digits_mlp"),
           "Benchmark models (comma list: `digits_cnn`, `digits_mlp`)"),
    Option("bench_frameworks", parse_list, ("sinabs", "spikingjelly"),
           "Benchmark conversion frameworks (comma list: `sinabs`, `spikingjelly`)"),
    Option("bench_targets", parse_list, ("cmos45nm", "loihi2"),
           "Benchmark energy targets: names of energy tables (built-in or from `energy_table`)"),
    Option("bench_timesteps", parse_timesteps, (4, 8, 16, 32),
           "Benchmark timesteps sweep (comma list, at most 8 values: each is a metric "
           "attribute value)"),
)

_BY_NAME = {opt.name: opt for opt in OPTIONS}


@dataclass(frozen=True)
class Settings:
    """Resolved settings; attribute names are the option names."""

    values: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve every option: keyword override, else environment, else default."""
    env = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        if opt.name in overrides:
            raw = overrides.pop(opt.name)
            values[opt.name] = _from_keyword(opt, raw)
            continue
        raw = env.get(opt.env)
        values[opt.name] = opt.default if raw is None or raw == "" else _from_env(opt, raw)
    return Settings(values)


def _from_env(opt: Option, raw: str) -> Any:
    try:
        return opt.parse(raw)
    except BadValue as exc:
        _LOG.warning("%s=%r is invalid (%s); using default %r", opt.env, raw, exc, opt.default)
        return opt.default


def _from_keyword(opt: Option, raw: Any) -> Any:
    if isinstance(opt.default, tuple) and isinstance(raw, (list, tuple)):
        raw = ",".join(str(item) for item in raw)
    try:
        return opt.parse(str(raw))
    except BadValue as exc:
        _LOG.warning("instrument(%s=%r) is invalid (%s); using default %r",
                     opt.name, raw, exc, opt.default)
        return opt.default


def option(name: str) -> Option:
    return _BY_NAME[name]
