"""SpiNNaker board reachability through spinnman.

One SCP "version" request to chip (0, 0) of the board at
``OTEL_PYTHON_SPIKEFORMER_SPINNAKER_HOST``, answered by SC&MP when the board is
up and booted. spinnman's own transceiver start can block 11-39 s on a silent
address; this probe waits at most ``probe_timeout`` and runs on the poller
thread, so no collection ever waits for it.
"""

from __future__ import annotations

from .base import OK, Device, DeviceAdapter, Snapshot, missing_module


class SpinnakerAdapter(DeviceAdapter):
    name = "spinnaker"
    hw_type = "neuromorphic"
    kinds = ("spinnaker",)
    triggers = ("spinnman", "spynnaker")

    @property
    def host(self) -> str:
        return getattr(self.settings, "spinnaker_host", "") or ""

    @property
    def timeout(self) -> float:
        # A little under the poller's limit, so spinnman's own error is reported.
        return 0.8 * float(getattr(self.settings, "probe_timeout", 2.0))

    def unavailable_reason(self) -> str | None:
        if missing_module("spinnman"):
            return "spinnman not installed (install the extra [devices])"
        if not self.host:
            return "no board address (set OTEL_PYTHON_SPIKEFORMER_SPINNAKER_HOST)"
        return None

    def discover(self):
        self.require_available()
        return [Device("spinnaker", self.hw_type, "SpiNNaker board", "spinnaker")]

    def read(self, device: Device) -> Snapshot:
        from spinnman.connections.udp_packet_connections import SCAMPConnection
        from spinnman.messages.scp.impl import GetVersion

        connection = SCAMPConnection(chip_x=0, chip_y=0, remote_host=self.host)
        try:
            request = GetVersion(0, 0, 0)
            connection.send(connection.get_scp_data(request))
            _result, _sequence, data, offset = connection.receive_scp_response(self.timeout)
            response = request.get_scp_response()
            response.read_bytestring(data, offset)  # raises on an error code
            info = response.version_info
        finally:
            connection.close()
        extra = {"address": self.host}
        if info is not None:
            extra.update(software=info.name, version=info.version_string, hardware=info.hardware)
        return Snapshot(device, OK, extra=extra)
