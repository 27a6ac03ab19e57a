"""A virtual SpiNNaker board for the demo, the collector workload and the tests.

sPyNNaker reads exactly one *user* config (``~/.spynnaker.cfg``, or
``$XDG_CONFIG_HOME/.spynnaker.cfg``, or the site one) and writes one into the
home directory when it finds none. We write ours into a directory of our own
and point ``XDG_CONFIG_HOME`` at it, with the reports under it as well:
sPyNNaker deletes older report folders where it writes, so they must never
share a folder with anything else. The board is one fixed 48-chip SpiNN-5
board (8 x 8), so "chips available" does not follow the network's size.
"""

from __future__ import annotations

import atexit
import configparser
import contextlib
import io
import os
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

CONFIG_NAME = ".spynnaker.cfg"
Sections = Mapping[str, Mapping[str, str]]


def _config(reports: Path) -> Sections:
    return {
        "Machine": {"virtual_board": "True", "version": "5", "width": "8", "height": "8"},
        "Reports": {"default_report_file_path": str(reports)},
        # small tables are "already small enough": make the host-side compressor run
        "Mapping": {"router_table_compress_as_far_as_possible": "True"},
        "Logging": {"instantiate": "False"},  # no logging.basicConfig(INFO) in our process
    }


def existing_user_config() -> str | None:
    """A user config of the person running us, which would clash with ours."""
    try:
        import appdirs
    except ImportError:  # no sPyNNaker either
        return None
    for directory in (appdirs.site_config_dir(), os.path.expanduser("~")):
        path = os.path.join(directory, CONFIG_NAME)
        if os.path.isfile(path):
            return path
    return None


def write_config(base: Path, extra: Sections | None = None) -> dict[str, str]:
    """Config in ``base/xdg`` (``extra`` options added), reports in
    ``base/reports``; returns the environment that selects it."""
    xdg, reports = base / "xdg", base / "reports"
    xdg.mkdir(parents=True, exist_ok=True)
    reports.mkdir(parents=True, exist_ok=True)
    config = configparser.ConfigParser()
    config.optionxform = str  # keep option names as written
    config.read_dict(_config(reports))
    config.read_dict(extra or {})
    with open(xdg / CONFIG_NAME, "w", encoding="utf-8") as out:
        config.write(out)
    return {"XDG_CONFIG_HOME": str(xdg)}


def build_network(sim: Any, populations: int = 2, neurons: int = 100) -> list[Any]:
    """Chained Poisson -> IF_curr_exp populations (all of them returned); 20
    neurons per core spread them over a few chips."""
    sim.set_number_of_neurons_per_core(sim.IF_curr_exp, 20)
    sim.set_number_of_neurons_per_core(sim.SpikeSourcePoisson, 50)
    sources, layers = [], []
    for i in range(populations):
        sources.append(sim.Population(neurons, sim.SpikeSourcePoisson(rate=10), label=f"src{i}"))
        layers.append(sim.Population(neurons, sim.IF_curr_exp(), label=f"pop{i}"))
        sim.Projection(sources[-1], layers[-1], sim.FixedProbabilityConnector(0.1),
                       sim.StaticSynapse(weight=0.5, delay=1))
    for pre, post in zip(layers, layers[1:]):
        sim.Projection(pre, post, sim.FixedProbabilityConnector(0.05),
                       sim.StaticSynapse(weight=0.2, delay=2))
    return sources + layers


@dataclass
class Mapped:
    neurons: int
    chips: int  # with an application core
    cores: int  # application cores (every chip also runs system cores)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def map_small_network(populations: int = 3, run_ms: float = 10.0) -> Mapped:
    """Map ``build_network`` onto the virtual board (setup, run, end) in a
    temporary directory. For this process only (the demo's, a test's):
    sPyNNaker's exit hooks stop writing into that deleted directory, its
    progress bars (stderr) are shown only if it fails, and the SIGINT handler
    and excepthook it installs are put back."""
    handler, excepthook = signal.getsignal(signal.SIGINT), sys.excepthook
    noise = io.StringIO()
    try:
        with tempfile.TemporaryDirectory(prefix="spikeformer-spinnaker-") as tmp, \
                _environment(write_config(Path(tmp))), contextlib.redirect_stderr(noise):
            try:
                import pyNN.spiNNaker as sim
                from spinn_front_end_common.data import FecDataView

                sim.setup(timestep=1.0)
                network = build_network(sim, populations=populations, neurons=200)
                sim.run(run_ms)
                placements = [p for p in FecDataView.iterate_placemements()  # sic
                              if p.vertex.app_vertex is not None]
                sim.end()
            finally:
                _detach_from_reports()
            return Mapped(sum(p.size for p in network), len({(p.x, p.y) for p in placements}),
                          len(placements))
    except BaseException:
        sys.stderr.write(noise.getvalue())
        raise
    finally:
        signal.signal(signal.SIGINT, handler)
        sys.excepthook = excepthook


def _detach_from_reports() -> None:
    """At exit sPyNNaker marks the report folder and reads its log database there."""
    with contextlib.suppress(ImportError):
        from spinn_utilities.data.utils_data_writer import UtilsDataWriter
        from spinn_utilities.log import FormatAdapter

        atexit.unregister(UtilsDataWriter.write_errored_file)
        FormatAdapter.set_log_store(None)
