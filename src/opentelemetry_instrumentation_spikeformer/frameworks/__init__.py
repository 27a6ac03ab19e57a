"""Framework extensions, loaded lazily (botocore's ``extensions`` pattern).

One module per library or toolchain declares a ``Framework``: its patch rows,
neuron classes and tensor layouts, model unwrapping and hardware names. The
registry maps a top-level package to the module that knows it; the module is
imported only when that package is imported (or when the monitor meets one of
its classes), never at ``import`` or ``instrument()`` time. Third parties add
one through the entry-point group ``ENTRY_POINT_GROUP`` (name: the package,
value: ``module:FRAMEWORK``).
"""

from __future__ import annotations

import functools
import importlib
import logging
import weakref
from importlib.metadata import entry_points
from typing import Any, Callable

from ..core import forksafe
from .base import Framework, NeuronRule

__all__ = ["ENTRY_POINT_GROUP", "Framework", "NeuronRule", "all_frameworks", "for_package",
           "module_rule", "neuron_rule", "packages", "rule_for_class", "unwrap"]

_LOG = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "opentelemetry_instrumentation_spikeformer.frameworks"

# Top-level package -> extension module (relative to this package).
BUILTIN: dict[str, str] = {
    "sinabs": ".sinabs",
    "spikingjelly": ".spikingjelly",
    "snntorch": ".snntorch",
    "nirtorch": ".nirtorch",
    "spikeformer": ".spikeformer_kits",
    "spike_transformer_compiler": ".spikeformer_kits",
    "spinn_front_end_common": ".spinnaker",
    "nengo_loihi": ".nengo_loihi",
    "akida": ".akida",
}

_lock = forksafe.lock()
_loaded: dict[str, Framework | None] = {}  # package -> framework (None: failed to load)


def _builtin_loader(module: str) -> Callable[[], Any]:
    return lambda: importlib.import_module(module, __package__).FRAMEWORK


@functools.lru_cache(maxsize=1)
def _loaders() -> dict[str, Callable[[], Any]]:
    found = {package: _builtin_loader(module) for package, module in BUILTIN.items()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            _LOG.warning("framework extension %r (%s) shadows a built-in one; ignored",
                         ep.name, ep.value)
            continue
        found[ep.name] = ep.load
    return found


def packages() -> tuple[str, ...]:
    """Every package an extension is registered for (reads entry-point metadata once)."""
    return tuple(_loaders())


def for_package(package: str) -> Framework | None:
    """The extension registered for a top-level package, imported on first use."""
    try:
        return _loaded[package]
    except KeyError:
        pass
    loader = _loaders().get(package)
    if loader is None:
        return None
    with _lock:
        if package not in _loaded:
            try:
                framework = loader()
                if not isinstance(framework, Framework):
                    raise TypeError(f"expected a Framework, got {type(framework).__name__}")
            except Exception as exc:  # a broken extension is one warning, the rest go on
                _LOG.warning("framework extension for %r failed to load: %s: %s",
                             package, type(exc).__name__, exc)
                framework = None
            _loaded[package] = framework
        return _loaded[package]


def all_frameworks() -> tuple[Framework, ...]:
    """Every registered extension, each once (imports them all: cheap, no library)."""
    found: dict[str, Framework] = {}
    for package in packages():
        framework = for_package(package)
        if framework is not None:
            found.setdefault(framework.name, framework)
    return tuple(found.values())


def _frameworks_of(klass: type) -> list[Framework]:
    """Extensions of the packages along ``klass``'s MRO (user subclasses included)."""
    found: list[Framework] = []
    for base in klass.__mro__:
        package = base.__module__.partition(".")[0] if isinstance(base.__module__, str) else ""
        framework = for_package(package) if package else None
        if framework is not None and framework not in found:
            found.append(framework)
    return found


_RULES: "weakref.WeakKeyDictionary[type, NeuronRule | None]" = weakref.WeakKeyDictionary()


def rule_for_class(klass: type) -> NeuronRule | None:
    """The first rule of the extensions along ``klass``'s MRO, whatever its role."""
    try:
        return _RULES[klass]
    except KeyError:
        rule = next((r for fw in _frameworks_of(klass) if (r := fw.rule_for(klass))), None)
        _RULES[klass] = rule
        return rule


def module_rule(module: Any) -> NeuronRule | None:
    """The rule of ``module`` whatever its role (neuron, encoder, operator, opaque
    consumer, ignored look-alike), ``None`` when no extension knows its class or
    the rule's per-instance ``spiking`` check says no."""
    rule = rule_for_class(type(module))
    if rule is not None and rule.spiking is not None and not rule.spiking(module):
        return None
    return rule


def neuron_rule(module: Any) -> NeuronRule | None:
    """The rule of ``module`` when it emits events (a spiking neuron, a spike
    encoder or a time-differential operator), ``None`` for anything else."""
    rule = module_rule(module)
    return rule if rule is not None and rule.is_source else None


def unwrap(obj: Any) -> Any:
    """The model inside what a converter returned (as its extension says), else ``obj``."""
    for framework in _frameworks_of(type(obj)):
        if framework.unwrap is not None:
            inner = framework.unwrap(obj)
            if inner is not None:
                return inner
    return obj
