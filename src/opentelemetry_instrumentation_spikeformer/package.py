"""Libraries this instrumentation patches.

Deliberately empty: ``opentelemetry-instrument`` skips an instrumentor whose
listed libraries are missing, but every library here is optional and the seed
kits (``spikeformer``, ``spike_transformer_compiler``) and extra targets may be
importable without any of them. Post-import hooks patch each library if and
when it is imported. Tested with: sinabs 3.1.3, spikingjelly 2.0.0,
snntorch 1.0.0, nirtorch 2.0.2 / nir 1.0.4.
"""

_instruments: tuple[str, ...] = ()

_supported = (
    "sinabs >= 3.0",
    "spikingjelly >= 2.0",
    "snntorch >= 0.9",
    "nirtorch >= 2.0",
)
