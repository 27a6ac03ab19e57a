#!/usr/bin/env python3
"""Generate README's tables (env vars, metrics, targets) from the code.

    python scripts/readme_tables.py --write   # rewrite the marked blocks in README.md
    python scripts/readme_tables.py --check   # exit 1 when README.md is out of date

Blocks are delimited by ``<!-- BEGIN name -->`` / ``<!-- END name -->``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from opentelemetry_instrumentation_spikeformer import frameworks  # noqa: E402
from opentelemetry_instrumentation_spikeformer.core import settings  # noqa: E402
from opentelemetry_instrumentation_spikeformer.core.metrics import all_metrics  # noqa: E402
from opentelemetry_instrumentation_spikeformer.core.targets import OP  # noqa: E402


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|")


def env_table() -> str:
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for opt in settings.OPTIONS:
        default = opt.default
        if isinstance(default, tuple):
            default = ",".join(str(item) for item in default)
        if isinstance(default, bool):
            default = str(default).lower()
        shown = f"`{_cell(default)}`" if default != "" else "*(empty)*"
        rows.append(f"| `{opt.env}` | {shown} | {_cell(opt.doc)} |")
    return "\n".join(rows)


def metrics_table() -> str:
    rows = ["| OTel name | Prometheus name | Kind | Unit | Attributes | Name in the design |",
            "|---|---|---|---|---|---|"]
    for spec in all_metrics():
        attrs = ", ".join(f"`{a}`" for a in spec.attributes) or "-"
        design = f"`{spec.design}`" if spec.design else "-"
        kind = spec.kind.replace("_", " ")
        rows.append(f"| `{spec.name}` | `{spec.prometheus}` | {kind} | `{_cell(spec.unit)}` "
                    f"| {attrs} | {_cell(design)} |")
    return "\n".join(rows)


def targets_table() -> str:
    rows = ["| Module | Callable | Role / operation | Framework | Model from | Hardware target from |",
            "|---|---|---|---|---|---|"]
    for t in (t for fw in frameworks.all_frameworks() for t in fw.targets):
        module = f"`{t.module}`" + "".join(f"<br>`{a}`" for a in t.aliases)
        if t.wrapper is not None:  # a step of something else, with its own wrapper
            role = "hook: " + (t.wrapper.__doc__ or t.role).strip().splitlines()[0]
        elif t.role == OP:
            role = t.operation
        else:
            role = f"child span: {t.role}" + (f" `{t.span_name}`" if t.step else "")
            if t.standalone:
                role += f"; called alone, inside a {t.standalone} span"
        if t.subclasses:
            role += " (and subclass overrides)"
        if t.root_span:
            role += " (also on its own, outside a conversion)"
        hardware = f"`{t.hardware_value}`" if t.hardware_value else (f"`{t.hardware}`" if t.hardware else "-")
        rows.append(f"| {module} | `{t.qualname}` | {role} | {t.framework} | "
                    f"{'`' + t.model + '`' if t.model else '-'} | {_cell(hardware)} |")
    return "\n".join(rows)


BLOCKS = {"env": env_table, "metrics": metrics_table, "targets": targets_table}


def render(text: str) -> str:
    for name, make in BLOCKS.items():
        pattern = re.compile(rf"(<!-- BEGIN {name} -->\n)(?:.*?\n)?(<!-- END {name} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"README.md lacks the <!-- BEGIN {name} --> block")
        text = pattern.sub(lambda m: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    readme = ROOT / "README.md"
    current = readme.read_text()
    wanted = render(current)
    if args.write:
        readme.write_text(wanted)
        return 0
    if current != wanted:
        print("README.md tables are out of date: run python scripts/readme_tables.py --write")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
