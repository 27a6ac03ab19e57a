"""Score per module and the surviving mutants of the last ``mutmut run``
(called by scripts/mutation.sh; arguments: the mutant-name globs it ran).

mutmut forks each mutant's test run from a process that has already imported
the package, so code that runs at import time (``parse_port =
parse_number(...)``, dataclass fields, specs) keeps its original behaviour
there. Every mutant that survives that run is therefore checked again in a
fresh interpreter, which imports the package with the mutant active, against
the module's test files below (``-x``: the first failure kills it).

Killed: a test failed, or the mutant hung past the timeout. Survived: every
test passed, or no test of the selection ran the mutated function.
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

KILLED = {"killed", "timeout", "caught by type check", "segfault"}
SURVIVED = {"survived", "no tests"}
BIN = Path(sys.executable).parent
PACKAGE = "opentelemetry_instrumentation_spikeformer"

# module (file name) -> a fast subset of the tests that exercise it: a survivor of the
# first pass must fail one of these to count as killed
TESTS = {
    "settings": ["tests/test_config.py"],
    "targets": ["tests/test_target_sources.py", "tests/test_targets.py", "tests/test_core_steps.py"],
    "attributes": ["tests/test_targets.py"],
    "hardware": ["tests/test_targets.py"],
    "imports": ["tests/test_import_hooks.py", "tests/test_core_steps.py"],
    "patching": ["tests/test_core_steps.py", "tests/test_instrumentor.py"],
    "wrappers": ["tests/test_telemetry_calls.py", "tests/test_reliability.py",
                 "tests/test_core_steps.py"],
    "telemetry": ["tests/test_telemetry_calls.py", "tests/test_reliability.py",
                  "tests/test_core_steps.py", "tests/test_conversions.py"],
    "synops": ["tests/test_synop_properties.py", "tests/test_monitor_counts.py",
               "tests/test_monitor_exactness.py", "tests/test_monitor_lifecycle.py",
               "tests/test_monitor_runtime.py", "tests/test_monitor_vs_spikingjelly.py"],
    "dataflow": ["tests/test_monitor_op_table.py", "tests/test_monitor_tracer.py",
                 "tests/test_transformer_monitor.py",
                 "tests/test_synop_properties.py", "tests/test_monitor_exactness.py",
                 "tests/test_monitor_lifecycle.py", "tests/test_monitor_counts.py",
                 "tests/test_monitor_runtime.py", "tests/test_monitor_vs_spikingjelly.py"],
    "plan": ["tests/test_monitor_op_table.py", "tests/test_monitor_tracer.py",
             "tests/test_transformer_monitor.py",
             "tests/test_synop_properties.py", "tests/test_monitor_exactness.py",
             "tests/test_monitor_lifecycle.py", "tests/test_monitor_counts.py",
             "tests/test_monitor_runtime.py", "tests/test_monitor_vs_spikingjelly.py"],
    "hooks": ["tests/test_monitor_hooks.py", "tests/test_monitor_runtime.py",
              "tests/test_monitor_lifecycle.py",
              "tests/test_monitor_counts.py"],
    "tally": ["tests/test_monitor_counts.py", "tests/test_monitor_exactness.py",
              "tests/test_monitor_lifecycle.py", "tests/test_synop_properties.py",
              "tests/test_monitor_runtime.py"],
    "lemaire": ["tests/test_monitor_vs_spikingjelly.py::test_memory_aware_estimate_equals_lemaire_profiler",
                "tests/test_monitor_vs_spikingjelly.py::test_memory_aware_estimate_of_a_spike_driven_if_cnn_equals_lemaire_profiler",
                "tests/test_monitor_vs_spikingjelly.py::test_estimates_over_two_input_shapes_and_repeated_forwards_add_up",
                "tests/test_monitor_energy.py"],
    "accumulate": ["tests/test_monitor_accumulate.py", "tests/test_monitor_counts.py"],
    "energy": ["tests/test_energy_tables.py", "tests/test_monitor_energy.py"],
}
TIMEOUT_S = float(os.environ.get("MUTATION_RECHECK_TIMEOUT", "300"))


def _results() -> dict[str, str]:
    out = subprocess.run([str(BIN / "mutmut"), "results", "--all", "true"],
                         capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name:
            found[name] = status
    return found


def _module(mutant: str) -> str:
    return mutant.partition("__mutmut_")[0].rsplit(".", 1)[0]


def recheck(mutant: str) -> str:
    """The mutant's status in a fresh interpreter (import-time code mutated too)."""
    tests = TESTS.get(_module(mutant).rsplit(".", 1)[-1])
    if not tests:
        return "no tests"
    env = {**os.environ, "MUTANT_UNDER_TEST": mutant, "PYTHONPATH": str(Path("mutants/src").resolve())}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
           "-m", "not subprocess", *tests]
    try:
        rc = subprocess.run(cmd, cwd="mutants", env=env, capture_output=True,
                            timeout=TIMEOUT_S).returncode
    except subprocess.TimeoutExpired:
        return "timeout"
    return {0: "survived", 5: "no tests"}.get(rc, "killed")


def main(globs: list[str]) -> int:
    statuses = {name: status for name, status in _results().items()
                if not globs or any(fnmatch.fnmatch(name, g) for g in globs)}
    if not statuses:
        print("mutation_report: no mutant results (did mutmut run?)", file=sys.stderr)
        return 1
    again = [name for name, status in statuses.items() if status in SURVIVED]
    print(f"mutation_report: {len(again)} survivors checked again in fresh interpreters",
          file=sys.stderr)
    with ThreadPoolExecutor(int(os.environ.get("MUTATION_JOBS", "2"))) as pool:
        for name, status in zip(again, pool.map(recheck, again)):
            statuses[name] = status
    by_module: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for name, status in statuses.items():
        by_module[_module(name)][status].append(name)
    survivors = []
    print(f"\n{'module':<44} {'killed':>7} {'total':>6} {'score':>7}")
    for module, found in sorted(by_module.items()):
        killed = sum(len(v) for k, v in found.items() if k in KILLED)
        total = killed + sum(len(v) for k, v in found.items() if k in SURVIVED)
        other = {k: len(v) for k, v in found.items() if k not in KILLED | SURVIVED}
        score = f"{100 * killed / total:.1f}%" if total else "-"
        short = module.removeprefix(PACKAGE + ".")
        print(f"{short:<44} {killed:>7} {total:>6} {score:>7}" + (f"  {other}" if other else ""))
        survivors += [(n, s) for s in sorted(SURVIVED) for n in sorted(found.get(s, ()))]
    for name, status in survivors:
        diff = subprocess.run([str(BIN / "mutmut"), "show", name], capture_output=True,
                              text=True).stdout
        print(f"\n== {status}: {name}\n{diff.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
