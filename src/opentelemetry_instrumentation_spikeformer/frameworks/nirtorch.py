"""nirtorch: the torch <-> NIR graph tracer and interpreter that sinabs,
snntorch and others build their NIR exchange on."""

from __future__ import annotations

from ..core.targets import nir_row
from .base import Framework

FRAMEWORK = Framework(
    name="nirtorch",
    packages=("nirtorch",),
    tested_with="nirtorch 2.0.2 / nir 1.0.4",
    targets=(
        nir_row("nirtorch.torch_tracer", "torch_to_nir", "nirtorch", "module", "to_nir",
                ("nirtorch",)),
        nir_row("nirtorch.to_nir", "extract_nir_graph", "nirtorch", "model", "to_nir",
                ("nirtorch",)),
        nir_row("nirtorch.nir_interpreter", "nir_to_torch", "nirtorch", "nir_node", "from_nir",
                ("nirtorch",)),
        nir_row("nirtorch.from_nir", "load", "nirtorch", "nir_graph", "from_nir", ("nirtorch",)),
    ),
)
