"""OTEL_PYTHON_SPIKEFORMER_FLUSH_ON_SIGTERM: a process stopped by SIGTERM (torchrun
stopping the ranks of a failed job) still exports its spans and metrics, and
still dies by SIGTERM; off by default, and never over a handler of the program."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from collector_support import VENV_BIN, launcher_env
from opentelemetry_instrumentation_spikeformer.distributed import sigterm

SCRIPT = Path(__file__).parent / "scripts" / "sigterm_job.py"
SPAWN_ARGV = ["python", "-c", "from multiprocessing.spawn import spawn_main", "--multiprocessing-fork"]


@pytest.fixture
def default_sigterm():
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    yield
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_installed_only_over_the_default_action_and_removed_again(default_sigterm):
    remove = sigterm.install()
    assert callable(signal.getsignal(signal.SIGTERM))
    remove()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_handler_of_the_program_always_wins(default_sigterm):
    def mine(*_args):
        pass

    signal.signal(signal.SIGTERM, mine)
    assert sigterm.install() is None
    assert signal.getsignal(signal.SIGTERM) is mine


def test_not_installed_off_the_main_thread_or_in_a_helper(default_sigterm, monkeypatch):
    found = []
    worker = threading.Thread(target=lambda: found.append(sigterm.install()))
    worker.start()
    worker.join()
    assert found == [None]
    monkeypatch.setattr(sys, "orig_argv", SPAWN_ARGV)
    assert sigterm.install() is None
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.parametrize("flush", [False, True])
def test_the_instrumentor_installs_it_only_when_asked(default_sigterm, instrument, flush):
    instrumentor = instrument(flush_on_sigterm=flush)
    assert (signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL) is flush
    instrumentor.uninstrument()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.subprocess
def test_a_process_stopped_by_sigterm_exports_only_with_the_setting():
    """The real launcher, console exporters, 10-minute export intervals: only a
    final flush can print the conversion's span and metrics."""
    jobs = {}
    for flush in ("false", "true"):
        env = launcher_env(OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="console",
                           OTEL_METRIC_EXPORT_INTERVAL="600000",
                           # the batch span processor's own 5 s timer would export the
                           # span on a slow machine: only the flush may
                           OTEL_BSP_SCHEDULE_DELAY="600000",
                           OTEL_PYTHON_SPIKEFORMER_FLUSH_ON_SIGTERM=flush)
        jobs[flush] = subprocess.Popen(
            [str(VENV_BIN / "opentelemetry-instrument"), sys.executable, str(SCRIPT)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = {flush: job.communicate(timeout=180) for flush, job in jobs.items()}
    for flush, job in jobs.items():
        stdout, stderr = out[flush]
        assert "work done" in stdout and "not stopped" not in stdout, stderr[-2000:]
        assert job.returncode == -signal.SIGTERM  # still dies by SIGTERM
    lost, flushed = out["false"][0], out["true"][0]
    for name in ('"name": "spikeformer.convert sinabs"', '"name": "spikeformer.conversions"',
                 '"name": "neural.spikes"'):
        assert name not in lost
        assert name in flushed, out["true"][1][-2000:]
