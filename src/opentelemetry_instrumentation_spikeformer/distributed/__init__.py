"""Multi-process jobs: plug-ins for the OpenTelemetry SDK and start-up checks.

- ``resource``: the ``spikeformer_distributed`` resource detector (rank,
  world size, a stable ``service.instance.id`` per rank);
- ``prometheus``: the ``spikeformer_prometheus`` metrics exporter (one port
  per rank on a node: ``OTEL_EXPORTER_PROMETHEUS_PORT`` + ``LOCAL_RANK``);
- ``sigterm``: flush spans and metrics when torchrun stops a rank;
- ``advice``: one-time hints about a configuration that loses ranks' data.

Which process is a rank or a helper: ``core.process``.
"""

import logging

# Problems of an exporter the user selected (a port it cannot serve, ranks
# whose metrics cannot be served) are reported like the SDK reports its own
# exporters' failures: on a logger outside our package's NullHandler, so a
# program without logging configuration still shows the one warning.
EXPORTER_LOG = logging.getLogger("spikeformer.prometheus")
