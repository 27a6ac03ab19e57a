"""Every ``OTEL_PYTHON_SPIKEFORMER_*`` setting, as one typed ``Settings`` object.

Each field of ``Settings`` is a setting: its default, parser, environment
variable (``environment_variables``) and README line are declared on the
field. Instrumentors also take each one as a keyword of ``instrument(...)``
(keywords win over the environment). A bad value never stops start-up: it
logs one warning naming the variable and the default used.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable, Mapping

from .. import environment_variables as env

_LOG = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
DAY_S = 86_400.0


class BadValue(ValueError):
    """A setting that cannot be parsed; the message says what was expected."""


def parse_str(text: str) -> str:
    return text.strip()


def parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise BadValue("expected true/false")


def parse_number(cast: Callable[[str], Any], minimum: float, maximum: float, what: str):
    """A parser for ``cast`` values within [minimum, maximum] (finite)."""
    def parse(text: str):
        try:
            value = cast(text.strip())
        except (ValueError, OverflowError):
            raise BadValue(f"expected {what}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise BadValue(f"expected a finite {what}")
        if not minimum <= value <= maximum:
            raise BadValue(f"expected {what} between {minimum:g} and {maximum:g}")
        return value

    return parse


def parse_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def parse_timesteps(text: str) -> tuple[int, ...]:
    """Distinct positive timestep counts, sorted; at most 8 (each becomes a
    metric attribute value of the benchmark runner)."""
    try:
        values = sorted({int(item) for item in parse_list(text)})
    except ValueError:
        raise BadValue("expected a comma list of integers") from None
    if not values or values[0] < 1:
        raise BadValue("expected integers >= 1")
    if len(values) > MAX_SWEEP_TIMESTEPS:
        raise BadValue(f"expected at most {MAX_SWEEP_TIMESTEPS} values")
    return tuple(values)


MAX_SWEEP_TIMESTEPS = 8
parse_port = parse_number(int, 0, 65535, "a port number")
parse_positive_int = parse_number(int, 1, 2**31 - 1, "a positive integer")


def parse_choice(*choices: str) -> Callable[[str], str]:
    """One of ``choices`` (case-insensitive)."""
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise BadValue("expected one of " + ", ".join(choices))
        return value

    return parse


def parse_level(text: str) -> int | str:
    """A logging level: a number (``20``) or a known name (``info`` -> ``"INFO"``)."""
    value = text.strip().upper()
    if value.isascii() and value.isdigit():  # "²".isdigit() is True too
        return int(value)
    if not isinstance(logging.getLevelName(value), int):
        raise BadValue("expected a logging level (debug, info, warning, error, critical)")
    return value


ALL_RANKS = "all"


def parse_ranks(text: str) -> tuple[str, ...]:
    """``all``, or a comma list of global ranks (``0,8,16``), kept as sorted
    decimal strings."""
    items = parse_list(text)
    if tuple(item.lower() for item in items) == (ALL_RANKS,):
        return (ALL_RANKS,)
    try:
        ranks = sorted({int(item) for item in items})
    except ValueError:
        raise BadValue("expected `all` or a comma list of ranks") from None
    if not ranks or ranks[0] < 0:
        raise BadValue("expected `all` or ranks >= 0")
    return tuple(str(rank) for rank in ranks)


def _setting(env_name: str, default: Any, parse: Callable[[str], Any], doc: str) -> Any:
    return field(default=default, metadata={"env": env_name, "parse": parse, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """Resolved settings; see each field's ``doc`` (README's configuration table)."""

    # -- core instrumentor ----------------------------------------------------
    extra_targets: str = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_EXTRA_TARGETS, "", parse_str,
        "More patch targets: `pkg.mod:Class.method=conversion,...` "
        "(operation: conversion, compilation, export, deployment)")
    layer_spans: bool = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_LAYER_SPANS, True, parse_bool,
        "Child spans per converted layer and per converter or toolchain stage")
    capture_memory: bool = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_CAPTURE_MEMORY, True, parse_bool,
        "Measure peak RSS growth during compilations")
    max_models: int = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_MAX_MODELS, 50, parse_number(int, 1, 10_000, "an integer"),
        "Distinct `model_type` values of the conversion metrics, and distinct monitored "
        "`model_name` values; later new ones are `other`")
    # -- spike monitor ----------------------------------------------------------
    spike_monitor: bool = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_SPIKE_MONITOR, True, parse_bool,
        "Attach the spike/energy monitor to models returned by conversions")
    model_name: str = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_MODEL_NAME, "", parse_str,
        "`model_name` of auto-attached monitors (empty: the source model's class); a second "
        "model of that name alive at the same time is `<name>#2`, and so on")
    monitor_sample_every: int = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_MONITOR_SAMPLE_EVERY, 1,
        parse_number(int, 1, 1_000_000, "an integer"), "Monitor one forward pass in N")
    timestep_ms: float = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_TIMESTEP_MS, 1.0,
        parse_number(float, 1e-6, 1e6, "a number of milliseconds"),
        "Length of one SNN timestep in ms, for rates in Hz")
    max_layers: int = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_MAX_LAYERS, 256, parse_number(int, 1, 4096, "an integer"),
        "Layers per model with their own label; the rest fold into one `other` layer")
    energy_hardware: str = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_ENERGY_HARDWARE, "cmos45nm", parse_str,
        "Energy table used for estimates when the target is not known (`cmos45nm`: the "
        "papers' 45 nm method; chip tables such as `loihi` are opt-in)")
    energy_table: str = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_ENERGY_TABLE, "", parse_str,
        "Per-operation energy overrides: JSON object or path to a JSON file")
    # -- devices instrumentor -------------------------------------------------
    device_adapters: tuple[str, ...] = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_DEVICE_ADAPTERS, (), parse_list,
        "Device adapters to poll (comma list; named ones start at once and are required by "
        "health checks; empty: every adapter that finds a device, from the first import of an "
        "SNN library or device package; `none`: no polling)")
    device_poll_interval: float = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_DEVICE_POLL_INTERVAL, 5.0,
        parse_number(float, 0.05, DAY_S, "seconds"),
        "Seconds between device probes (probes run off the collection thread)")
    probe_timeout: float = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_PROBE_TIMEOUT, 2.0, parse_number(float, 0.01, 600, "seconds"),
        "Seconds before a device probe counts as failed")
    rapl_root: str = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_RAPL_ROOT, "/sys/class/powercap", parse_str,
        "Powercap tree the `rapl` adapter reads (e.g. the host's, mounted into a container)")
    spinnaker_host: str = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_SPINNAKER_HOST, "", parse_str,
        "SpiNNaker board address to probe")
    health_server: bool = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_HEALTH_SERVER, False, parse_bool,
        "Serve /health and /health/detailed over HTTP")
    health_host: str = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_HEALTH_HOST, "127.0.0.1", parse_str,
        "Bind address of the health server")
    health_port: int = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_HEALTH_PORT, 8099, parse_port,
        "Port of the health server (0: any free port)")
    # -- multi-process jobs ------------------------------------------------------
    monitor_ranks: tuple[str, ...] = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_MONITOR_RANKS, (ALL_RANKS,), parse_ranks,
        "torchrun jobs: global ranks whose converted models get the per-layer spike monitor "
        "(comma list, e.g. `0`); the others still report conversions (docs/scaling.md)")
    flush_on_sigterm: bool = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_FLUSH_ON_SIGTERM, False, parse_bool,
        "On SIGTERM (torchrun stopping the ranks of a failed job) flush spans and metrics, "
        "then die by SIGTERM as before; only where SIGTERM has its default action")
    # -- setup_logging() defaults ------------------------------------------------
    log_format: str = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_LOG_FORMAT, "json", parse_choice("json", "text", "none"),
        "`setup_logging()` console format: `json` lines or `text` on stderr, or `none` "
        "(no console handler: only level, log counter and OTel logs bridge)")
    log_level: int | str = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_LOG_LEVEL, "INFO", parse_level,
        "`setup_logging()` level of the configured logger")
    # -- spikeformer-otel bench -----------------------------------------------
    bench_interval: float = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_BENCH_INTERVAL, 0.0, parse_number(float, 0, 7 * DAY_S, "seconds"),
        "`spikeformer-otel bench`: seconds between runs (start to start); 0: one run, "
        "print the table, exit")
    bench_models: tuple[str, ...] = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_BENCH_MODELS,
        ("digits_cnn", "digits_mlp", "digits_vit", "digits_spikformer", "digits_sdt"), parse_list,
        "Benchmark models (comma list: `digits_cnn`, `digits_mlp`, `digits_vit`; trained "
        "directly as SNNs: `digits_spikformer`, `digits_sdt`)")
    bench_frameworks: tuple[str, ...] = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_BENCH_FRAMEWORKS,
        ("sinabs", "spikingjelly", "spikingjelly_sta", "spikingjelly_td"), parse_list,
        "Benchmark conversion frameworks (comma list: `sinabs`, `spikingjelly` (rate coding), "
        "`spikingjelly_sta`, `spikingjelly_td` (transformer recipes)); each converts the "
        "models it accepts")
    bench_targets: tuple[str, ...] = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_BENCH_TARGETS, ("cmos45nm", "loihi"), parse_list,
        "Benchmark energy targets: names of energy tables (built-in or from `energy_table`)")
    bench_timesteps: tuple[int, ...] = _setting(
        env.OTEL_PYTHON_SPIKEFORMER_BENCH_TIMESTEPS, (4, 8, 16, 32), parse_timesteps,
        f"Benchmark timesteps sweep (comma list, at most {MAX_SWEEP_TIMESTEPS} values: each "
        "is a metric attribute value)")


@dataclass(frozen=True)
class Option:
    """One setting as the loader and README see it."""

    name: str
    env: str
    default: Any
    parse: Callable[[str], Any]
    doc: str


OPTIONS: tuple[Option, ...] = tuple(
    Option(f.name, f.metadata["env"], f.default, f.metadata["parse"], f.metadata["doc"])
    for f in fields(Settings) if f.default is not MISSING
)
NAMES = frozenset(opt.name for opt in OPTIONS)
_BY_NAME = {opt.name: opt for opt in OPTIONS}


def option(name: str) -> Option:
    return _BY_NAME[name]


def load_settings(overrides: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve every setting: keyword override, else environment, else default.
    Keys of ``overrides`` that are not settings are ignored."""
    source = os.environ if environ is None else environ
    overrides = overrides or {}
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        if opt.name in overrides:
            values[opt.name] = _from_keyword(opt, overrides[opt.name])
            continue
        raw = source.get(opt.env)
        if raw is not None and raw.strip() != "":
            values[opt.name] = _from_env(opt, raw)
    return Settings(**values)


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
