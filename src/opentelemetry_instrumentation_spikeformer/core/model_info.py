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


# A Hugging Face style config's names -> ours
_CONFIG_SHAPE = (("num_hidden_layers", "layers"), ("num_attention_heads", "heads"),
                 ("num_key_value_heads", "kv_heads"), ("hidden_size", "embed_dim"))


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _first(obj: Any, names: tuple[str, ...]) -> int | None:
    return next((v for v in (_count(getattr(obj, n, None)) for n in names) if v), None)


def transformer_shape(model: Any) -> dict[str, int]:
    """Blocks (``layers``), attention heads (``heads``, ``kv_heads``) and width
    (``embed_dim``) of a transformer where the model says them: a Hugging Face
    style ``config``, else its attention modules (int ``num_heads`` and
    ``embed_dim`` as torch's ``nn.MultiheadAttention``, or Hugging Face's
    ``num_attention_heads`` and ``all_head_size``; heads and width only when
    every block agrees). Empty when neither is readable."""
    config = getattr(model, "config", None)
    found = {ours: _count(getattr(config, name, None)) for name, ours in _CONFIG_SHAPE}
    if found["layers"] and found["heads"]:
        return {k: v for k, v in found.items() if v}
    if not is_model(model):
        return {}
    blocks, heads, widths, inside = 0, set(), set(), set()
    for module in model.modules():
        if id(module) in inside:
            continue
        head = _first(module, ("num_heads", "num_attention_heads"))
        width = _first(module, ("embed_dim", "all_head_size"))
        if head and width:
            blocks += 1
            heads.add(head)
            widths.add(width)
            inside.update(id(m) for m in module.modules())
    shape = {"layers": blocks} if blocks else {}
    if len(heads) == 1 and len(widths) == 1:
        shape.update(heads=heads.pop(), embed_dim=widths.pop())
    return shape
