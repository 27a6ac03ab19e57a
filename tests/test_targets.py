"""Every built-in row is checked against the installed library's real API:
the callable exists, and every parameter a source names is a real parameter."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import logging

import pytest

from opentelemetry_instrumentation_spikeformer.core import attributes
from opentelemetry_instrumentation_spikeformer.core.hardware import hardware_label
from opentelemetry_instrumentation_spikeformer.core.targets import (
    OP, Source, Target, nir_row, parse_extra_targets,
)
from opentelemetry_instrumentation_spikeformer.frameworks import all_frameworks

BUILTIN_TARGETS = tuple(t for fw in all_frameworks() for t in fw.targets)

# Rows for packages that are not installable here (the Spikeformer kits, tested with a
# package the tests create) and rows whose module imports samna (checked by
# parsing the source instead).
_SEED_KITS = ("spikeformer", "spike_transformer_compiler")
_NEEDS_SAMNA = "sinabs.backend.dynapcnn"

# Toolchains installed into an environment of their own (scripts/toolchain-venv.sh):
# their rows are checked when this file runs there (tests/test_toolchain_venvs.py).
OWN_ENVIRONMENT = ("nengo_loihi", "akida")


def _here(row: Target) -> bool:
    package = row.module.partition(".")[0]
    return package not in OWN_ENVIRONMENT or importlib.util.find_spec(package) is not None


LIBRARY_ROWS = [
    row for t in BUILTIN_TARGETS for row in t.expanded()
    if not row.module.startswith(_SEED_KITS) and not row.module.startswith(_NEEDS_SAMNA)
    and _here(row)
]


def _param_names(row: Target, func) -> set[str]:
    sig = inspect.signature(func)
    return set(sig.parameters) - {"self"}


def _source_params(row: Target) -> set[str]:
    names = set()
    for field in ("model", "hardware", "timesteps", "samples", "layer", "recipe"):
        for head, _rest, _flt in Source.parse(getattr(row, field)).alternatives:
            if head != "self" and not head.startswith("#"):
                names.add(head)
    return names


@pytest.mark.parametrize("row", LIBRARY_ROWS, ids=lambda r: f"{r.module}:{r.qualname}")
def test_builtin_row_matches_installed_library(row):
    module = importlib.import_module(row.module)
    owner = module
    *path, attr = row.qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    func = getattr(owner, attr)
    assert callable(func)
    wanted = _source_params(row)  # a pybind11 method (Akida's _map) has no signature
    missing = wanted - _param_names(row, func) if wanted else set()
    assert not missing, f"{row.function_name} has no parameter(s) {missing}"


@pytest.mark.parametrize("qualname", ["DynapcnnNetwork.__init__", "DynapcnnNetwork.make_config"])
def test_dynapcnn_rows_match_sinabs_source(qualname):
    """sinabs.backend.dynapcnn imports samna, so read its source instead of importing it."""
    row = next(t for t in BUILTIN_TARGETS if t.qualname == qualname)
    spec = importlib.util.find_spec("sinabs")
    path = spec.submodule_search_locations[0] + "/backend/dynapcnn/dynapcnn_network.py"
    tree = ast.parse(open(path).read())
    cls_name, method = qualname.split(".")
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls_name)
    defs = [n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == method]
    assert defs, f"{qualname} not in sinabs source"
    params = {a.arg for a in defs[-1].args.args} - {"self"}  # the last def wins at runtime
    assert _source_params(row) <= params
    if method == "make_config":
        defaults = dict(zip([a.arg for a in defs[-1].args.args][::-1],
                            [ast.literal_eval(d) for d in defs[-1].args.defaults][::-1]))
        assert hardware_label(defaults["device"]) == "speck2fdevkit"


# operation -> the span verb, as the README's span table writes it
VERBS = {"conversion": "convert", "compilation": "compile", "export": "export",
         "deployment": "deploy"}


def test_every_op_row_has_known_operation_and_span_name():
    for row in BUILTIN_TARGETS:
        if row.role == OP:
            assert row.operation in VERBS
            assert row.span_name == "spikeformer." + VERBS[row.operation] + " " + row.framework


@pytest.mark.parametrize("row,name", [
    (Target("m", "f", "conversion", "sinabs"), "spikeformer.convert sinabs"),
    (Target("m", "f", "compilation", "acme"), "spikeformer.compile acme"),
    (Target("m", "f", "export", "nirtorch"), "spikeformer.export nirtorch"),
    (Target("m", "f", "deployment", "akida"), "spikeformer.deploy akida"),
    (Target("m", "C.calibrate", framework="x", role="calibration"), "spikeformer.calibrate"),
    (Target("m", "C.replace", framework="x", role="layer"), "spikeformer.convert_layer"),
])
def test_span_names(row, name):
    assert row.span_name == name


_SHAPE = "expected module:qualname=operation, operation one of conversion|compilation|export|deployment"


def test_extra_targets_parse_and_warn_on_malformed(caplog):
    text = "mypkg.sub.mod:Thing.run=compilation, broken-entry ,,other:f=frobnicate,pkg:fn=conversion"
    with caplog.at_level(logging.WARNING):
        rows = parse_extra_targets(text)
    assert rows == [
        Target("mypkg.sub.mod", "Thing.run", "compilation", "mypkg", model="model or #0",
               hardware="target or hardware_target or device", extra=True),
        Target("pkg", "fn", "conversion", "pkg", model="model or #0",
               hardware="target or hardware_target or device", extra=True)]
    assert [r.getMessage() for r in caplog.records] == [
        f"OTEL_PYTHON_SPIKEFORMER_EXTRA_TARGETS: ignoring 'broken-entry' ({_SHAPE})",
        f"OTEL_PYTHON_SPIKEFORMER_EXTRA_TARGETS: ignoring 'other:f=frobnicate' ({_SHAPE})"]


@pytest.mark.parametrize("entry,package", [
    ("builtins:len=conversion", "builtins"), ("opentelemetry.sdk.trace:Tracer=export", "opentelemetry"),
    ("wrapt:wrap_function_wrapper=compilation", "wrapt"),
    ("opentelemetry_instrumentation_spikeformer.core.settings:load_settings=deployment",
     "opentelemetry_instrumentation_spikeformer"),
])
def test_extra_targets_refuse_our_own_and_everyones_packages(entry, package, caplog):
    with caplog.at_level(logging.WARNING):
        assert parse_extra_targets(f"{entry},ok.builtins:f=export", source="instrument()") == [
            Target("ok.builtins", "f", "export", "ok", model="model or #0",
                   hardware="target or hardware_target or device", extra=True)]
    assert [r.getMessage() for r in caplog.records] == [
        f"instrument(): ignoring {entry!r} (the package {package} cannot be instrumented)"]


def test_a_row_expands_to_one_row_per_reexport():
    row = Target("pkg.impl", "f", "export", "pkg", aliases=("pkg", "pkg.api"))
    assert row.expanded() == [row, Target("pkg", "f", "export", "pkg"),
                              Target("pkg.api", "f", "export", "pkg")]


@pytest.mark.parametrize("value,expected", [
    ("speck2fdevkit:0", "speck2fdevkit"), ("Loihi2", "loihi2"), ("loihi-3", "loihi3"),
    (None, "none"), ("my-custom-board:7", "other"), ("", "none"), ("SpiNNaker2", "spinnaker2"),
    ("loihi_2", "loihi2"), ("speck2f_devkit:1", "speck2fdevkit"), ("Speck2f-Dev_Kit", "speck2fdevkit"),
    ("  CUDA:1 ", "cuda"), ("akd_1000", "akd1000"), (":0", "none"), ("loihi2:0:1", "loihi2"),
])
def test_hardware_label_is_bounded(value, expected):
    assert hardware_label(value) == expected


def test_hardware_label_of_a_device_object_uses_its_type():
    import torch

    assert hardware_label(torch.device("cuda", 3)) == "cuda"
    assert hardware_label(torch.device("cpu")) == "cpu"
    assert hardware_label(type("Board", (), {"type": 7, "__str__": lambda s: "Loihi_2"})()) \
        == "loihi2"
    assert hardware_label(type("Chip", (), {"type": "Speck2f-DevKit", "__str__": lambda s: "chip"})()) \
        == "speck2fdevkit"
    assert hardware_label(12) == "other" and hardware_label(b"cpu") == "other"


@pytest.mark.parametrize("parameters,expected", [
    (None, "none"), (0, "tiny"), (10, "tiny"), (99_999, "tiny"), (100_000, "small"),
    (999_999, "small"), (1_000_000, "medium"), (9_999_999, "medium"), (10_000_000, "large"),
    (99_999_999, "large"), (100_000_000, "xlarge"), (2_000_000_000, "xlarge"),
])
def test_model_size_classes_at_each_boundary(parameters, expected):
    assert attributes.model_size_class(parameters) == expected


def test_nir_rows():
    assert nir_row("m", "f", "fw", "net", "to_nir", ("alias",)) == Target(
        "m", "f", "export", "fw", model="net", hardware_value="nir", direction="to_nir",
        aliases=("alias",))
    assert nir_row("m", "g", "fw", "#0", "from_nir").aliases == ()
