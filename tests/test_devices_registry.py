"""Adapter selection and third-party adapters from the entry-point group."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

import pytest

from opentelemetry_instrumentation_spikeformer.core.settings import load_settings
from opentelemetry_instrumentation_spikeformer.devices import registry
from opentelemetry_instrumentation_spikeformer.devices.poller import Poller

ADAPTER_MODULE = textwrap.dedent('''
    from opentelemetry_instrumentation_spikeformer.devices.base import (
        OK, Device, DeviceAdapter, Snapshot)

    class AcmeAdapter(DeviceAdapter):
        hw_type, kinds = "neuromorphic", ("acme",)

        def discover(self):
            return [Device("acme0", self.hw_type, "Acme NPU", "acme")]

        def read(self, device):
            return Snapshot(device, OK, power_w=4.25, core_utilization=0.75)
''')


@pytest.fixture
def acme_dist(tmp_path, monkeypatch):
    """A real installed distribution on a temp path: module + dist-info with entry points."""
    (tmp_path / "acme_adapters.py").write_text(ADAPTER_MODULE)
    info = tmp_path / "acme_adapters-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-adapters\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{registry.ENTRY_POINT_GROUP}]\n"
        "acme = acme_adapters:AcmeAdapter\n"
        "broken = acme_adapters_missing_module:Nope\n"
        "host = acme_adapters:AcmeAdapter\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.factories.cache_clear()
    yield tmp_path
    registry.factories.cache_clear()


def test_entry_point_adapter_is_polled_and_a_broken_one_is_one_warning(acme_dist, caplog):
    caplog.set_level(logging.WARNING, logger=registry.__name__)
    found = registry.factories()
    assert "acme" in found and "broken" not in found
    assert found["host"].__module__.endswith(".devices.host")  # built-in not shadowed
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "'broken'" in w and "failed to load" in w]) == 1
    assert len([w for w in warnings if "'host'" in w and "shadows a built-in" in w]) == 1

    settings = load_settings({"device_adapters": "acme,host"}, environ={})
    poller = Poller(registry.enabled_adapters(settings), 1.0, 1.0)
    views = {v.name: v for v in poller.run_once()}
    poller.stop()
    [snap] = views["acme"].snapshots
    assert (snap.device.id, snap.power_w, snap.core_utilization) == ("acme0", 4.25, 0.75)
    assert views["host"].status == "up"


def test_entry_point_adapter_in_a_fresh_process_via_the_cli(acme_dist):
    """The same distribution found by importlib.metadata through PYTHONPATH."""
    env = {"PYTHONPATH": str(acme_dist), "PIP_NO_INDEX": "1", "PATH": "/usr/bin:/bin",
           "OTEL_PYTHON_SPIKEFORMER_DEVICE_ADAPTERS": "acme",
           "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
           "OTEL_LOGS_EXPORTER": "none"}
    done = subprocess.run([sys.executable, "-m", "opentelemetry_instrumentation_spikeformer.tools.cli",
                           "health"], env=env, capture_output=True, text=True, timeout=60)
    body = json.loads(done.stdout)
    assert body["hardware"]["acme"]["devices"][0]["power_w"] == 4.25
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("failed to load") == 1


def test_unknown_adapter_name_is_one_warning(caplog):
    caplog.set_level(logging.WARNING, logger=registry.__name__)
    settings = load_settings({"device_adapters": "host,warp_drive"}, environ={})
    names = [e.adapter.name for e in registry.enabled_adapters(settings)]
    assert names == ["host"]
    assert any("warp_drive" in r.getMessage() for r in caplog.records)


def test_default_selection_and_required_rule():
    settings = load_settings({}, environ={})
    chosen = {e.adapter.name: e.required for e in registry.enabled_adapters(settings)}
    assert set(chosen) == set(registry.BUILTIN) and not any(chosen.values())
    settings = load_settings({}, environ={"OTEL_PYTHON_SPIKEFORMER_SPINNAKER_HOST": "10.0.0.1"})
    chosen = {e.adapter.name: e.required for e in registry.enabled_adapters(settings)}
    assert chosen["spinnaker"] and not chosen["host"]
