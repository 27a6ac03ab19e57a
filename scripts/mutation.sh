#!/usr/bin/env bash
# Mutation testing, before a release (not CI: too slow for two cores).
#   scripts/mutation.sh                  every module of [tool.mutmut] in pyproject.toml
#   scripts/mutation.sh settings targets  only these modules (file names without .py)
# mutmut 3 copies src/ and tests/ into mutants/, makes one-line bugs in the modules'
# functions, and runs for each only the tests of the selection that executed it.
# Prints the score per module and every surviving mutant with its diff;
# docs/testing.md records the scores and why each accepted survivor is accepted.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${SPIKEFORMER_VENV:-.venv}"
[ -x "$VENV/bin/python" ] || scripts/bootstrap.sh
"$VENV/bin/python" -c 'import mutmut' 2>/dev/null \
  || "$VENV/bin/python" -m pip install -q -e ".[mutation]"

PACKAGE=opentelemetry_instrumentation_spikeformer
globs=()
for module in "$@"; do
  path=$(find "src/$PACKAGE" -name "$module.py" | head -n1)
  [ -n "$path" ] || { echo "mutation.sh: no module $module.py under src/$PACKAGE" >&2; exit 2; }
  dotted=${path#src/}; dotted=${dotted%.py}; dotted=${dotted//\//.}
  globs+=("$dotted.*")
done

# A fresh copy each time: mutants/ of an older tree would mix old and new results.
rm -rf mutants
# One thread per test process: two run side by side on two cores.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
"$VENV/bin/mutmut" run --max-children "${MUTATION_JOBS:-2}" "${globs[@]}" || true
"$VENV/bin/python" scripts/mutation_report.py "${globs[@]}"
