"""Read what a span needs from a model by duck typing, never importing torch.

Everything here works on anything with ``parameters()`` / ``modules()`` and
returns ``None`` rather than raising for objects that are not models (NIR
graphs, config dicts, compiled artefacts).
"""

from __future__ import annotations

from typing import Any

from .. import frameworks


def unwrap_model(obj: Any) -> Any:
    """The torch module inside what a converter returned (sinabs ``Network``),
    as the object's framework extension says."""
    return frameworks.unwrap(obj)


def is_model(obj: Any) -> bool:
    return callable(getattr(obj, "parameters", None)) and callable(getattr(obj, "modules", None))


def describe(model: Any) -> tuple[int, int] | None:
    """(parameter count, leaf-layer count) in one walk of the module tree.

    ``numel`` reads shape metadata (no device sync); shared parameters count once.
    Leaf modules are the layers a person would count on a diagram.
    """
    if not is_model(model):
        return None
    params, layers, seen = 0, 0, set()
    for module in model.modules():
        own = getattr(module, "_parameters", None)
        children = getattr(module, "_modules", None)
        if not isinstance(own, dict) or not isinstance(children, dict):
            return _describe_public(model)
        for p in own.values():
            if p is not None and id(p) not in seen:
                seen.add(id(p))
                params += p.numel()
        layers += not children
    return int(params), layers


def _describe_public(model: Any) -> tuple[int, int]:
    """Slower path through the public API for module-likes that are not torch's."""
    params = sum(p.numel() for p in model.parameters())
    layers = sum(1 for m in model.modules() if next(iter(m.children()), None) is None)
    return int(params), layers


def is_spiking_neuron(module: Any) -> bool:
    """A neuron some extension's ``NeuronRule`` recognises (user subclasses too)."""
    return frameworks.neuron_rule(module) is not None


def spiking_layer_count(model: Any) -> int | None:
    if not is_model(model):
        return None
    return sum(1 for m in model.modules() if is_spiking_neuron(m))


def model_type(obj: Any) -> str:
    """Class name: bounded by the classes a program defines."""
    return type(obj).__name__
