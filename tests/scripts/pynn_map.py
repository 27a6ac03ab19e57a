"""A plain PyNN script (no OpenTelemetry code) for tests/test_spinnaker.py:

    opentelemetry-instrument python pynn_map.py OUT.json [--too-big]

Maps a network onto the virtual board that ``$XDG_CONFIG_HOME/.spynnaker.cfg``
describes and runs it twice (the second run maps nothing new), or, with
``--too-big``, a network that needs more chips than the board has. Writes
where sPyNNaker kept its own records to OUT.json.
"""

import json
import sys

import pyNN.spiNNaker as sim
from spinn_front_end_common.data import FecDataView

from opentelemetry_instrumentation_spikeformer.tools.virtual_spinnaker import build_network

out = {}
sim.setup(timestep=1.0)
if "--too-big" in sys.argv:
    sim.set_number_of_neurons_per_core(sim.IF_curr_exp, 1)
    source = sim.Population(10, sim.SpikeSourcePoisson(rate=10))
    big = sim.Population(900, sim.IF_curr_exp())
    sim.Projection(source, big, sim.AllToAllConnector(), sim.StaticSynapse(weight=0.1))
    try:
        sim.run(10)
    except Exception as exc:  # the placer cannot fit 900 cores on 48 chips
        out["error"] = type(exc).__name__
else:
    build_network(sim, populations=5, neurons=200)
    sim.run(50)
    out["run_dir"] = FecDataView.get_run_dir_path()
    sim.run(50)
out["db"] = f"{FecDataView.get_timestamp_dir_path()}/global_provenance.sqlite3"
sim.end()
with open(sys.argv[1], "w", encoding="utf-8") as f:
    json.dump(out, f)
