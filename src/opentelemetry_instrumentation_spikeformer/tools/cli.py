"""``spikeformer-otel``: small operational commands.

Each command is a row of ``COMMANDS``: name -> ("module:function", help). The
module is imported only when its command runs, so ``--help`` stays fast and
imports no torch. The function takes the remaining arguments and returns the
exit code. Usage errors exit 64 (EX_USAGE), so they never read as a status.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

EX_USAGE = 64

COMMANDS: dict[str, tuple[str, str]] = {
    "bench": ("opentelemetry_instrumentation_spikeformer.tools.bench.command:main",
              "benchmark accuracy after conversion, latency, throughput, energy and sparsity "
              "per model x framework x target (one-shot or periodic)"),
    "demo": ("opentelemetry_instrumentation_spikeformer.tools.demo:main",
             "train, convert (sinabs, spikingjelly), run and compile a small SNN; show the telemetry"),
    "health": ("opentelemetry_instrumentation_spikeformer.tools.health_command:main",
               "check devices and exporter endpoints, print JSON "
               "(exit 0 healthy, 1 degraded, 2 unhealthy)"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would exit 2, which means "unhealthy"
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")


def make_parser(command: str | None = None,
                description: str | None = None) -> argparse.ArgumentParser:
    """A parser for ``spikeformer-otel [command]`` with the CLI's exit conventions."""
    prog = "spikeformer-otel" + (f" {command}" if command else "")
    return _Parser(prog=prog, description=description)


def main(argv: list[str] | None = None) -> int:
    if not logging.getLogger().handlers:  # a command is an application: show warnings
        logging.basicConfig(level=logging.WARNING, format="spikeformer-otel: %(message)s")
    parser = make_parser(description="OpenTelemetry instrumentation for SNN pipelines: tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=_Parser)
    for name, (_ref, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    module, _, function = COMMANDS[args.command][0].partition(":")
    return getattr(importlib.import_module(module), function)(rest)


if __name__ == "__main__":
    sys.exit(main())
