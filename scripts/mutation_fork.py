"""Run mutmut's undecided mutants without mutmut's scheduler (run in ``mutants/``).

mutmut 3.8.1 stalls when run again after the tests changed (the display freezes,
children keep starting, no result is recorded). This runs what it left: for each
mutant whose verdict in ``src/**/*.meta`` is still empty, fork from one warm
process, set ``MUTANT_UNDER_TEST`` and run ``pytest -x`` on the tests mutmut's
stats (``mutmut-stats.json``) say executed the function, fastest first; or, with
``--tests``, on those test files for the mutants listed in ``--names`` (a recheck
of survivors against tests written after their run); or, with ``--plan``, on the
tests a JSON file lists per mutant (``{name: [test ids]}``). Verdicts go to a JSON file
(name -> pytest exit code: 0 survived, 1 killed, -1 timeout, 33 no tests);
``scripts/mutation_report.py`` still gives the final, fresh-interpreter check.

    cd mutants && ../.venv/bin/python ../scripts/mutation_fork.py --out ../fork.json
    cd mutants && ../.venv/bin/python ../scripts/mutation_fork.py --out ../recheck.json \\
        --names ../survivors.txt --tests tests/test_monitor_op_table.py
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file of verdicts (resumed if present)")
    parser.add_argument("--only", default="", help="run only mutant names containing this")
    parser.add_argument("--names", help="file of mutant names to run (default: undecided ones)")
    parser.add_argument("--tests", nargs="*", help="test files for every mutant (default: stats)")
    parser.add_argument("--plan", help="JSON file: mutant name -> the test ids to run it on")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()

    sys.path.insert(0, "src")
    import torch

    torch.set_num_threads(1)  # forked children: no OpenMP pool to inherit
    import pytest

    stats = json.load(open("mutmut-stats.json"))
    tests_by, duration = stats["tests_by_mangled_function_name"], stats["duration_by_test"]
    results = json.load(open(args.out)) if os.path.exists(args.out) else {}
    plan = json.load(open(args.plan)) if args.plan else None
    if plan is not None:
        todo = list(plan)
    elif args.names:
        todo = [line.strip() for line in open(args.names) if line.strip()]
    else:
        todo = []
        for meta in sorted(glob.glob("src/**/*.meta", recursive=True)):
            codes = json.load(open(meta))["exit_code_by_key"]
            todo += [k for k, v in codes.items() if v is None]
    todo = [k for k in todo if args.only in k and k not in results]
    files = args.tests or sorted({t.split("::")[0] for ts in (plan or tests_by).values()
                                  for t in ts})
    print(f"{len(todo)} mutants", flush=True)
    pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *files])

    running: dict[int, tuple[str, float]] = {}
    start, done = time.time(), 0

    def launch(name: str) -> None:
        listed = plan[name] if plan is not None else \
            tests_by.get(name.rsplit("__mutmut_", 1)[0], [])
        tests = args.tests or sorted(listed, key=lambda t: duration.get(t, 1e9))
        if not tests:
            results[name] = 33
            return
        pid = os.fork()
        if pid == 0:
            os.environ["MUTANT_UNDER_TEST"] = name
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            try:
                code = int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                                        *tests]))
            except BaseException:
                code = 99
            os._exit(code)
        running[pid] = (name, time.time())

    while todo or running:
        while todo and len(running) < args.jobs:
            launch(todo.pop(0))
        if not running:
            continue
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            for p, (name, began) in list(running.items()):
                if time.time() - began > args.timeout:
                    os.kill(p, 9)
                    os.waitpid(p, 0)
                    running.pop(p)
                    results[name] = -1
            time.sleep(0.05)
            continue
        name, _ = running.pop(pid)
        results[name] = os.waitstatus_to_exitcode(status)
        done += 1
        if done % 20 == 0 or not (todo or running):
            json.dump(results, open(args.out, "w"))
            survived = sum(1 for v in results.values() if v == 0)
            print(f"{done} run, {len(todo)} left, {survived} survived, "
                  f"{time.time() - start:.0f} s", flush=True)
    json.dump(results, open(args.out, "w"))


if __name__ == "__main__":
    main()
