"""Drive the DynapcnnNetwork rows on real sinabs code; print spans/metrics as JSON."""

import json

from conftest import Telemetry
from models import tiny_cnn
from opentelemetry_instrumentation_spikeformer import SpikeformerInstrumentor

tel = Telemetry()
SpikeformerInstrumentor().instrument(tracer_provider=tel.tracer_provider,
                                     meter_provider=tel.meter_provider)
import sinabs  # noqa: E402
from sinabs.backend.dynapcnn import DynapcnnNetwork  # noqa: E402

snn = sinabs.from_model(tiny_cnn(), input_shape=(2, 14, 14), batch_size=1).spiking_model
net = DynapcnnNetwork(snn, input_shape=(2, 14, 14), discretize=True)
error = None
try:
    net.make_config(device="speck2edevkit:0")
except Exception as exc:
    error = type(exc).__name__
print(json.dumps({
    "error": error,
    "spans": [{"name": s.name, "attributes": dict(s.attributes), "status": s.status.status_code.name}
              for s in tel.spans()],
    "compilations": [[dict(p.attributes), p.value] for p in tel.points("spike_compiler.compilations")],
    "errors": [[dict(p.attributes), p.value] for p in tel.points("spike_compiler.compilation.errors")],
}))
