"""Hardware target names: one normalisation for labels and energy tables, and
a bounded set of label values (generic ones here, chips from the extensions)."""

from __future__ import annotations

import functools
from typing import Any

from .attributes import OTHER, UNSPECIFIED

# Targets that belong to no framework: where a model runs, and the NIR format.
GENERIC = frozenset({"cpu", "cuda", "gpu", "mps", "simulator", "nir"})


def normalize(value: Any) -> str:
    """``"Speck2f-DevKit:0"`` -> ``"speck2fdevkit"``: lower case, device index
    dropped, ``-`` and ``_`` removed. Objects with a ``type`` (torch.device) use it."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else getattr(value, "type", None)
    if not isinstance(text, str):
        text = str(value)
    return text.strip().lower().split(":", 1)[0].replace("-", "").replace("_", "")


@functools.lru_cache(maxsize=1)
def known() -> frozenset[str]:
    """Every label value kept as is: generic targets and the extensions' chips."""
    from .. import frameworks

    chips = {normalize(name) for fw in frameworks.all_frameworks() for name in fw.hardware}
    return GENERIC | chips


def hardware_label(value: Any) -> str:
    """Canonical, bounded hardware target: ``"speck2fdevkit:0"`` -> ``"speck2fdevkit"``,
    unknown names -> ``other``, nothing -> ``none``."""
    text = normalize(value)
    if not text:
        return UNSPECIFIED
    return text if text in known() else OTHER
