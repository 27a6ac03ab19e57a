"""Each built-in adapter on this machine: real readings where hardware exists, a
clean one-line "absent" reason where it does not, never an import error."""

from __future__ import annotations

import os
import socket
import struct
import sys
import threading
import time
from pathlib import Path

import pytest
from device_helpers import enabled, make_rapl_zone, view

from opentelemetry_instrumentation_spikeformer.devices import metrics as device_metrics
from opentelemetry_instrumentation_spikeformer.core.settings import load_settings
from opentelemetry_instrumentation_spikeformer.devices.base import FAILED, OK, Unavailable
from opentelemetry_instrumentation_spikeformer.devices.host import HostAdapter
from opentelemetry_instrumentation_spikeformer.devices.loihi import LoihiAdapter
from opentelemetry_instrumentation_spikeformer.devices.nvml import NvmlAdapter
from opentelemetry_instrumentation_spikeformer.devices.poller import Poller
from opentelemetry_instrumentation_spikeformer.devices.rapl import RaplAdapter
from opentelemetry_instrumentation_spikeformer.devices.registry import BUILTIN, enabled_adapters
from opentelemetry_instrumentation_spikeformer.devices.spinnaker import SpinnakerAdapter
from opentelemetry_instrumentation_spikeformer.devices.synsense import SynsenseAdapter

SCAMP_PORT = 17893


def _nvml_driver() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        return True
    except Exception:
        return False


# -- host ----------------------------------------------------------------------
def test_host_reads_memory_and_process():
    adapter = HostAdapter()
    [device] = adapter.discover()
    snap = adapter.read(device)
    assert snap.state == OK
    assert 0 < snap.extra["memory_utilization"] < 1
    assert snap.extra["process_rss_bytes"] == pytest.approx(_rss_from_proc(), rel=0.2)
    assert 0 <= snap.extra["process_cpu_utilization"] <= 1
    # for health only: no reading feeds a metric (system-metrics owns those names)
    assert all(snap.reading(spec.name) is None for spec in device_metrics.HARDWARE_METRICS)


def test_host_cpu_utilization_stays_a_fraction_when_read_right_after_discovery():
    """psutil's cpu_percent over a microsecond interval reads far above 100 %
    (up to 39x of all CPUs here); with two busy threads, 2,000 real reads."""
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            sum(range(1000))

    threads = [threading.Thread(target=spin) for _ in range(2)]
    for t in threads:
        t.start()
    adapter, values = HostAdapter(), []
    try:
        for _ in range(2000):
            [device] = adapter.discover()
            values.append(adapter.read(device).extra["process_cpu_utilization"])
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert [v for v in values if not 0 <= v <= 1] == []
    assert max(values) > 0  # the busy threads were seen


def _rss_from_proc() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_host_is_degraded_above_the_memory_threshold(monkeypatch):
    from opentelemetry_instrumentation_spikeformer.devices import host

    adapter = HostAdapter()
    [device] = adapter.discover()
    monkeypatch.setattr(host, "MEMORY_DEGRADED", 0.0)  # any real use is now "high"
    snap = adapter.read(device)
    assert snap.state == "degraded" and "memory" in snap.error


# -- nvml ------------------------------------------------------------------------
@pytest.mark.skipif(_nvml_driver(), reason="a GPU driver is present: see the readings test")
def test_nvml_without_driver_is_unavailable_in_one_line():
    with pytest.raises(Unavailable) as info:
        NvmlAdapter().discover()
    assert str(info.value).startswith("no NVIDIA driver")
    assert "\n" not in str(info.value)


@pytest.mark.skipif(not _nvml_driver(), reason="no NVIDIA driver on this machine")
def test_nvml_readings_on_a_gpu():
    adapter = NvmlAdapter()
    devices = adapter.discover()
    assert devices and devices[0].id == "gpu0"
    snap = adapter.read(devices[0])
    assert isinstance(snap.power_w, float) and snap.power_w > 0
    assert 0 <= snap.utilization <= 1
    assert 0 < snap.memory_used_bytes <= snap.memory_limit_bytes
    adapter.close()


class _DriverStandIn:
    """Stands in for libnvidia-ml on a machine without a GPU (the real pynvml's errors
    and constants): checks our unit conversions and what is read when."""

    def __init__(self):
        import pynvml

        self.__spec__ = pynvml.__spec__  # installed, as far as find_spec can tell
        self.NVMLError = pynvml.NVMLError
        self.NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
        self._code = pynvml.NVML_ERROR_NOT_SUPPORTED
        self.calls: dict[str, int] = {}

    def __getattr__(self, name):
        raise AttributeError(name)

    def _count(self, name):
        self.calls[name] = self.calls.get(name, 0) + 1

    def nvmlInit(self): self._count("init")
    def nvmlShutdown(self): self._count("shutdown")
    def nvmlDeviceGetCount(self): return 1
    def nvmlDeviceGetHandleByIndex(self, index): return ("handle", index)
    def nvmlDeviceGetName(self, handle):
        self._count("name")
        return b"Stand-in H100"

    def nvmlDeviceGetUUID(self, handle): return "GPU-1234"
    def nvmlDeviceGetPowerManagementLimit(self, handle): return 700_000
    def nvmlDeviceGetPowerUsage(self, handle): return 71_234  # mW
    def nvmlDeviceGetTotalEnergyConsumption(self, handle): return 5_000_500  # mJ

    def nvmlDeviceGetUtilizationRates(self, handle):
        return type("U", (), {"gpu": 37, "memory": 5})()

    def nvmlDeviceGetMemoryInfo(self, handle):
        self._count("memory")
        return type("M", (), {"used": 2 * 2**30, "total": 80 * 2**30, "free": 78 * 2**30})()

    def nvmlDeviceGetTemperature(self, handle, sensor):
        raise self.NVMLError(self._code)  # "Not Supported" on this GPU


def test_nvml_units_and_skipped_readings(monkeypatch):
    driver = _DriverStandIn()
    monkeypatch.setitem(sys.modules, "pynvml", driver)
    adapter = NvmlAdapter()
    [device] = adapter.discover()
    assert (device.id, device.type, device.name) == ("gpu0", "gpu", "Stand-in H100")
    snaps = [adapter.read(device) for _ in range(3)]
    snap = snaps[-1]
    assert snap.power_w == 71.234  # mW -> W, not floored
    assert snap.energy_j == 5000.5  # mJ -> J
    assert snap.utilization == 0.37
    assert (snap.memory_used_bytes, snap.memory_limit_bytes) == (2 * 2**30, 80 * 2**30)
    assert snap.temperature_c is None  # not supported: left out, not 0
    assert snap.extra["power_limit_w"] == 700.0 and snap.extra["uuid"] == "GPU-1234"
    assert driver.calls["name"] == 1  # static facts once, at discovery
    assert driver.calls["memory"] == 1 + 3
    adapter.close()
    assert driver.calls["shutdown"] == 1


# -- rapl ------------------------------------------------------------------------
def test_rapl_on_a_fake_sysfs_tree_unwraps_the_counter(tmp_path):
    zone = make_rapl_zone(tmp_path, 0, "package-0", energy=900_000, max_range=1_000_000)
    make_rapl_zone(tmp_path, 1, "psys", energy=5, max_range=1_000_000)
    adapter = RaplAdapter(root=tmp_path)
    devices = adapter.discover()
    assert [(d.id, d.type) for d in devices] == [("package-0", "cpu"), ("psys", "cpu")]
    first = adapter.read(devices[0])
    assert first.energy_j == pytest.approx(0.9) and first.power_w is None
    time.sleep(0.05)
    (zone / "energy_uj").write_text("100000\n")  # wrapped: 100 000 more uJ past the range
    second = adapter.read(devices[0])
    assert second.energy_j == pytest.approx(1.1)  # monotonic across the wrap
    assert 0 < second.power_w < 0.2 / 0.05  # 0.2 J over at least 50 ms


def test_rapl_absent_root_and_unreadable_counter(tmp_path, monkeypatch):
    assert "not present" in RaplAdapter(root=tmp_path / "nope").unavailable_reason()
    zone = make_rapl_zone(tmp_path, 0, "package-0", energy=1, max_range=10)
    if os.geteuid() != 0:
        (zone / "energy_uj").chmod(0)
    else:  # root reads anything: raise what the kernel would give a user
        original = Path.read_text

        def read_text(self, *args, **kwargs):
            if self.name == "energy_uj":
                raise PermissionError(13, "Permission denied", str(self))
            return original(self, *args, **kwargs)

        monkeypatch.setattr(Path, "read_text", read_text)
    with pytest.raises(Unavailable, match="energy_uj not readable"):
        RaplAdapter(root=tmp_path).discover()


def test_rapl_default_root_on_this_machine():
    adapter = RaplAdapter()
    if Path("/sys/class/powercap").is_dir():
        pytest.skip("this machine has a powercap tree")
    assert adapter.unavailable_reason() == (
        "/sys/class/powercap not present (no RAPL powercap on this machine)")


# -- spinnaker (real spinnman) -----------------------------------------------------
def _settings(**overrides):
    return load_settings(overrides, environ={})


@pytest.fixture
def scamp_socket():
    """A UDP socket on loopback's SC&MP port, so a test decides what the 'board' does."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", SCAMP_PORT))
    except OSError:
        pytest.skip(f"UDP port {SCAMP_PORT} busy")
    yield sock
    sock.close()


def test_spinnaker_without_address_is_unavailable():
    assert "SPINNAKER_HOST" in SpinnakerAdapter(_settings()).unavailable_reason()


def test_spinnaker_nothing_listening_is_down_fast():
    adapter = SpinnakerAdapter(_settings(spinnaker_host="127.0.0.1", probe_timeout=1.0))
    [device] = adapter.discover()
    began = time.monotonic()
    from spinnman.exceptions import SpinnmanIOException

    with pytest.raises(SpinnmanIOException):
        adapter.read(device)
    assert time.monotonic() - began < 1.0


def test_spinnaker_silent_board_times_out_off_the_collection_thread(otel, scamp_socket):
    from opentelemetry_instrumentation_spikeformer.devices.instruments import register

    settings = _settings(spinnaker_host="127.0.0.1", probe_timeout=0.5)
    poller = Poller(enabled(SpinnakerAdapter(settings), HostAdapter(), required=("spinnaker",)),
                    interval=0.1, timeout=0.5)
    register(otel.meter_provider.get_meter("t"), poller.views, lambda: True)
    poller.start()
    try:
        scamp_socket.settimeout(2.0)
        scamp_socket.recvfrom(512)  # the probe's request arrived; the 'board' keeps silent
        began = time.perf_counter()
        otel.reader.get_metrics_data()
        assert time.perf_counter() - began < 0.1
        end = time.monotonic() + 2.0
        while view(poller, "spinnaker").status != "down" and time.monotonic() < end:
            time.sleep(0.02)
        spin = view(poller, "spinnaker")
        assert spin.status == "down"
        assert spin.snapshots[0].state == FAILED
        assert otel.value("hw.status", **{"hw.id": "spinnaker", "hw.state": "failed"}) == 1
    finally:
        poller.stop()


def _version_reply(request: bytes) -> bytes:
    """What SC&MP answers to CMD_VER: SDP header back to the sender, RC_OK, version block."""
    flags, tag, dst_port_cpu, src_port_cpu, dy, dx, sy, sx = struct.unpack_from("<8B", request, 2)
    sdp = struct.pack("<8B", 0x07, 0xFF, src_port_cpu, dst_port_cpu, sy, sx, dy, dx)
    sequence = struct.unpack_from("<H", request, 12)[0]
    scp = struct.pack("<HH", 0x80, sequence)  # RC_OK
    version = struct.pack("<BBBBHHI", 0, 0, 0, 0, 0, 307, 1_600_000_000) + b"SC&MP/SpiNNaker\0"
    return b"\0\0" + sdp + scp + version


def test_spinnaker_board_that_answers_is_up(scamp_socket):
    def board():
        data, sender = scamp_socket.recvfrom(512)
        scamp_socket.sendto(_version_reply(data), sender)

    thread = threading.Thread(target=board, daemon=True)
    thread.start()
    adapter = SpinnakerAdapter(_settings(spinnaker_host="127.0.0.1", probe_timeout=2.0))
    [device] = adapter.discover()
    snap = adapter.read(device)
    assert snap.state == OK
    assert snap.extra["software"] == "SC&MP" and snap.extra["hardware"] == "SpiNNaker"
    assert snap.extra["version"] == "SC&MP/SpiNNaker"
    thread.join(1.0)


# -- synsense (samna) ------------------------------------------------------------
def test_synsense_recognises_the_pypi_placeholder_without_importing_it():
    import importlib.util

    spec = importlib.util.find_spec("samna")
    if spec is None:
        assert SynsenseAdapter().unavailable_reason() == "samna is not installed"
        return
    if "PYPI_SAMNA" not in Path(spec.origin).read_text():
        pytest.skip("the real samna is installed")
    before = "samna" in sys.modules
    reason = SynsenseAdapter().unavailable_reason()
    assert reason.startswith("PyPI samna stub installed")
    with pytest.raises(Unavailable):
        SynsenseAdapter().discover()
    assert ("samna" in sys.modules) == before  # never imported by us


# -- loihi (lava) ------------------------------------------------------------------
def test_loihi_without_lava_is_unavailable():
    import importlib.util

    if importlib.util.find_spec("lava") is not None:
        pytest.skip("lava is installed here")
    assert LoihiAdapter().unavailable_reason().startswith("lava-nc not installed")
    with pytest.raises(Unavailable):
        LoihiAdapter().discover()


# -- all of them -------------------------------------------------------------------
def _expected_states() -> dict[str, str]:
    """What this machine has, found without the adapters: no board address is set
    and no SynSense or Loihi hardware is attached to a test machine."""
    rapl = any(os.access(zone / "energy_uj", os.R_OK)
               for zone in Path("/sys/class/powercap").glob("intel-rapl:*"))
    return {"host": "up", "nvml": "up" if _nvml_driver() else "down",
            "rapl": "up" if rapl else "down", "spinnaker": "down", "synsense": "down",
            "loihi": "down"}


def test_every_builtin_required_reports_state_without_raising():
    """Named explicitly, each adapter gives a verdict within the probe timeout."""
    settings = _settings(device_adapters=",".join(BUILTIN), probe_timeout=1.0)
    poller = Poller(enabled_adapters(settings), 1.0, 1.0)
    began = time.monotonic()
    views = {v.name: v for v in poller.run_once()}
    poller.stop()
    assert time.monotonic() - began < 1.5
    assert set(views) == set(BUILTIN)
    assert {name: v.status for name, v in views.items()} == _expected_states()
    for name, v in views.items():
        assert v.required
        if v.status == "down":
            [snap] = v.snapshots
            assert snap.device.id == name and snap.error and "\n" not in snap.error
            assert snap.device.attributes()[device_metrics.HW_TYPE] == v.snapshots[0].device.type
