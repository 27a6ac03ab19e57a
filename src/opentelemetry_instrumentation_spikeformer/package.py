"""Libraries this instrumentation patches.

Deliberately empty: ``opentelemetry-instrument`` skips an instrumentor whose
listed libraries are missing, but every library is optional and the
Spikeformer kits and extra targets may be importable without any of them.
Post-import hooks patch each library if and when it is imported; the versions
each framework extension was tested with are in its ``tested_with``.
"""

_instruments: tuple[str, ...] = ()
