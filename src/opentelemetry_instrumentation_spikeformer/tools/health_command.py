"""``spikeformer-otel health``: one health check from outside the program;
prints the detailed JSON and exits 0/1/2 as the status (3: the check failed)."""

from __future__ import annotations

import json

from ..devices.health import HealthChecker
from .cli import make_parser


def main(argv: list[str]) -> int:
    parser = make_parser("health", "Check devices and exporter endpoints; print JSON. "
                         "Exit 0 healthy, 1 degraded, 2 unhealthy, 3 check failed.")
    parser.add_argument("--summary", action="store_true", help="print only the /health body")
    args = parser.parse_args(argv)
    try:
        status = HealthChecker(in_process=False).check_all()
    except Exception as exc:
        print(json.dumps({"status": "unknown", "error": f"{type(exc).__name__}: {exc}"}))
        return 3
    print(json.dumps(status.summary() if args.summary else status.to_dict(), indent=2,
                     default=str))
    return status.exit_code
