"""Intel Loihi 2 / Loihi 3 availability through Lava.

Needs lava-nc and Intel's lava-loihi extension (NRC members only); lava-nc has
no release for Python 3.11. With the runtime present, the board is the one
Lava would use: ``NXSDKHOST`` (ethernet host, pinged like Lava does) or a
SLURM partition (``sinfo``). Loihi 3 has no public runtime: it is reported
only as a health key (``check_hardware().loihi3``), down unless a runtime
ever reports it.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from .base import OK, Device, DeviceAdapter, Snapshot, Unavailable, missing_module

# LOIHI_GEN values Lava knows: all Loihi 2 steppings.
_GENERATIONS = {"N3B2": "loihi2", "N3B3": "loihi2", "N3C1": "loihi2"}
_LAVA_LOIHI = "lava.magma.compiler.subcompilers.nc"


class LoihiAdapter(DeviceAdapter):
    name = "loihi"
    hw_type = "neuromorphic"
    kinds = ("loihi2", "loihi3")
    triggers = ("lava",)

    def unavailable_reason(self) -> str | None:
        if missing_module("lava"):
            return "lava-nc not installed (no release for this Python)"
        if missing_module(_LAVA_LOIHI):
            return "lava-loihi not installed: no Loihi runtime"
        return None

    def discover(self):
        self.require_available()
        generation = os.environ.get("LOIHI_GEN", "N3B3")
        kind = _GENERATIONS.get(generation)
        if kind is None:
            raise Unavailable(f"LOIHI_GEN={generation} is not a Loihi generation Lava knows")
        return [Device(kind, self.hw_type, "Loihi 2", kind)]

    def read(self, device: Device) -> Snapshot:
        timeout = max(1, int(float(getattr(self.settings, "probe_timeout", 2.0))))
        host = os.environ.get("NXSDKHOST")
        if host:
            command = ["ping", "-c", "1", "-W", str(timeout), host]
        elif os.environ.get("SLURM") and shutil.which("sinfo"):
            command = ["sinfo", "-h", "-o", "%a"] + (
                ["-p", os.environ["PARTITION"]] if os.environ.get("PARTITION") else [])
        else:
            raise ConnectionError("no Loihi board configured (NXSDKHOST or SLURM)")
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 1)
        if done.returncode != 0 or (command[0] == "sinfo" and "up" not in done.stdout.split()):
            raise ConnectionError(f"{command[0]} {command[-1]}: board not reachable")
        return Snapshot(device, OK, extra={"board": host or os.environ.get("PARTITION", "slurm")})
