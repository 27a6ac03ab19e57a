"""Core mechanisms the chip toolchains use, on a small module made here: named
child steps, a step that opens its own operation when called alone, a row that
declines a call, and hooks that read the call's object and arguments."""

from __future__ import annotations

import gc
import logging
import pickle
import sys
import types
import weakref

import pytest

from opentelemetry_instrumentation_spikeformer.core.attributes import COMPILATION
from opentelemetry_instrumentation_spikeformer.core import patching
from opentelemetry_instrumentation_spikeformer.core.patching import PatchSession, SpikeformerWrapper
from opentelemetry_instrumentation_spikeformer.core.scope import get_meter, get_tracer
from opentelemetry_instrumentation_spikeformer.core.settings import load_settings
from opentelemetry_instrumentation_spikeformer.core.targets import (
    STAGE as STAGE_ROLE, RowHooks, Target,
)
from opentelemetry_instrumentation_spikeformer.core.telemetry import Telemetry

MODULE = "acme_toolchain_for_core_tests"


class Board:
    def __init__(self, cores):
        self.cores = cores


class Allocator:
    def __call__(self, model, n_chips):
        if n_chips < 1:
            raise ValueError("no chips")
        return Board(len(model) * n_chips)


def compile_net(net):
    return Allocator()(net, n_chips=2)


class BigAllocator(Allocator):
    """Overrides the wrapped method; its row does not ask for subclasses."""

    def __call__(self, model, n_chips):
        return Board(100)


class Outer:
    class Inner:
        def run(self, net):
            return len(net)


def version():
    return "1.0"


def tagging(session):
    """A row's own wrapper factory: gets the session, returns a wrapt wrapper."""
    def wrapper(wrapped, instance, args, kwargs):
        return ("tagged", session.active, wrapped(*args, **kwargs))
    return wrapper


class Seen(RowHooks):
    def __init__(self):
        self.calls = []

    def applies(self, bound):
        return bound.get("n_chips") != 99

    def on_end(self, call, result, error):
        self.calls.append((call.target.role, type(call.instance).__name__,
                           dict(call.bound), result, error))
        call.span.set_attribute("acme.cores", getattr(result, "cores", -1))


@pytest.fixture
def toolchain(otel):
    module = types.ModuleType(MODULE)
    module.Allocator, module.Board, module.compile_net = Allocator, Board, compile_net
    module.BigAllocator, module.Outer, module.version = BigAllocator, Outer, version
    sys.modules[MODULE] = module
    hooks = Seen()
    rows = [
        Target(MODULE, "compile_net", COMPILATION, "acme", model="net", hardware_value="loihi"),
        Target(MODULE, "Allocator.__call__", framework="acme", role=STAGE_ROLE, step="allocate",
               standalone=COMPILATION, model="model", hardware_value="loihi", hooks=hooks),
        Target(MODULE, "Outer.Inner.run", COMPILATION, "acme", model="net"),
        Target(MODULE, "version", framework="acme", role=STAGE_ROLE, wrapper=tagging),
    ]
    session = PatchSession(_telemetry(otel), rows, packages=())
    session.start()
    yield module, hooks
    session.stop()
    del sys.modules[MODULE]


def _telemetry(otel):
    return Telemetry(get_tracer(otel.tracer_provider), get_meter(otel.meter_provider),
                     load_settings(environ={}))


def test_a_step_inside_an_operation_is_one_named_child(toolchain, otel):
    module, hooks = toolchain
    board = module.compile_net([1, 2, 3])
    assert board.cores == 6
    spans = {s.name: s for s in otel.spans()}
    assert set(spans) == {"spikeformer.compile acme", "spikeformer.stage allocate"}
    step = spans["spikeformer.stage allocate"]
    assert step.parent.span_id == spans["spikeformer.compile acme"].context.span_id
    assert step.attributes["acme.cores"] == 6
    assert otel.value("spike_compiler.compilations", framework="acme") == 1
    assert [(role, kind, bound["n_chips"]) for role, kind, bound, _, _ in hooks.calls] == [
        ("stage", "Allocator", 2)]


def test_a_step_called_alone_opens_its_operation(toolchain, otel):
    module, hooks = toolchain
    board = module.Allocator()([1, 2], n_chips=3)
    spans = {s.name: s for s in otel.spans()}
    assert set(spans) == {"spikeformer.compile acme", "spikeformer.stage allocate"}
    outer, step = spans["spikeformer.compile acme"], spans["spikeformer.stage allocate"]
    assert step.parent.span_id == outer.context.span_id
    assert outer.attributes["spikeformer.operation"] == COMPILATION
    assert outer.attributes["spikeformer.hardware.target"] == "loihi"
    assert outer.attributes["acme.cores"] == step.attributes["acme.cores"] == board.cores == 6
    assert otel.value("spike_compiler.compilations", framework="acme") == 1
    # hooks ran for both calls, the step first, each with the call's object and arguments
    assert [(role, bound["n_chips"]) for role, _, bound, _, _ in hooks.calls] == [
        ("stage", 3), ("op", 3)]


def test_a_failing_step_alone_fails_both_spans_with_the_same_exception(toolchain, otel):
    module, _ = toolchain
    with pytest.raises(ValueError, match="no chips") as raised:
        module.Allocator()([1], n_chips=0)
    spans = otel.spans()
    assert len(spans) == 2 and all(s.status.status_code.name == "ERROR" for s in spans)
    assert all(s.attributes["error.type"] == "ValueError" for s in spans)
    assert str(raised.value) == "no chips"
    assert otel.value("spike_compiler.compilation.errors", framework="acme") == 1


def test_a_row_may_decline_a_call(toolchain, otel):
    module, hooks = toolchain
    assert module.Allocator()([1], n_chips=99).cores == 99
    assert otel.spans() == [] and hooks.calls == []


def test_hooks_keep_nothing_after_the_call(toolchain):
    module, hooks = toolchain
    allocator = module.Allocator()
    ref = weakref.ref(allocator)
    allocator([1], n_chips=1)
    del allocator
    hooks.calls.clear()
    gc.collect()
    assert ref() is None


def test_step_span_name_defaults_to_the_callable():
    row = Target("m", "Recipe.finalize", framework="x", role=STAGE_ROLE)
    assert row.span_name == "spikeformer.stage finalize"
    assert Target("m", "A.__call__", framework="x", role=STAGE_ROLE, step="allocate").span_name \
        == "spikeformer.stage allocate"
    assert row.standalone_row() is None
    step = Target("m", "A.__call__", framework="x", role=STAGE_ROLE, standalone=COMPILATION,
                  aliases=("n",))
    assert step.standalone_row() == Target("m", "A.__call__", COMPILATION, "x")
    assert RowHooks().applies({"anything": 1}) is True


def test_stop_forgets_the_session_and_leaves_a_foreign_rewrap(otel, caplog):
    from opentelemetry_instrumentation_spikeformer.core import imports

    module = types.ModuleType(MODULE)
    module.compile_net = compile_net
    sys.modules[MODULE] = module
    session = PatchSession(_telemetry(otel), [Target(MODULE, "compile_net", COMPILATION, "acme")],
                           packages=())
    session.start()
    import wrapt

    foreign = wrapt.FunctionWrapper(module.compile_net, lambda w, i, a, k: w(*a, **k))
    module.compile_net = foreign  # someone else wrapped our wrapper
    try:
        with caplog.at_level(logging.DEBUG, logger=patching.__name__):
            session.stop()
    finally:
        del sys.modules[MODULE]
    assert module.compile_net is foreign
    assert [r.getMessage() for r in caplog.records] == [
        f"{module!r}.compile_net was re-wrapped by someone else; leaving our inactive wrapper "
        "in place"]
    assert not any(session.imported in found for found in imports._listeners.values())


def test_wrapped_methods_pickle_as_lookups(toolchain, otel):
    """A wrapped method pickles as ``getattr(instance or class, name)``."""
    module, _ = toolchain
    bound = pickle.loads(pickle.dumps(module.Allocator().__call__))
    assert bound([1, 2], n_chips=2).cores == 4
    unbound = pickle.loads(pickle.dumps(module.Allocator.__call__))
    assert unbound(Allocator(), [1], n_chips=3).cores == 3
    assert [s.name for s in otel.spans()].count("spikeformer.stage allocate") == 2


def test_rows_reach_nested_classes_and_own_wrappers_but_not_subclasses(toolchain, otel):
    module, _ = toolchain
    assert module.Outer.Inner().run([1, 2]) == 2
    assert [s.name for s in otel.spans()] == ["spikeformer.compile acme"]
    assert module.version() == ("tagged", True, "1.0")
    assert module.BigAllocator()([1], n_chips=1).cores == 100
    assert len(otel.spans()) == 1  # the override is not wrapped: the row has no subclasses


def test_a_session_patches_only_the_packages_it_is_given(toolchain):
    import sinabs.from_torch

    assert not isinstance(sinabs.from_torch.__dict__["from_model"], SpikeformerWrapper)


def test_a_missing_target_is_skipped_with_a_warning_only_when_asked_for(otel, caplog):
    module = types.ModuleType(MODULE)
    module.Outer = Outer
    sys.modules[MODULE] = module
    rows = [Target(MODULE, "gone", COMPILATION, "acme"),
            Target(MODULE, "Nowhere.run", COMPILATION, "acme", extra=True),
            Target(MODULE, "Outer.Inner.missing", COMPILATION, "acme", extra=True)]
    session = PatchSession(_telemetry(otel), rows, packages=())
    try:
        with caplog.at_level(logging.DEBUG, logger=patching.__name__):
            session.start()
    finally:
        session.stop()
        del sys.modules[MODULE]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("DEBUG", f"acme: gone not found in module {MODULE}; target skipped"),
        ("WARNING", "OTEL_PYTHON_SPIKEFORMER_EXTRA_TARGETS: Nowhere.run not found in module "
                    f"{MODULE}; target skipped"),
        ("WARNING", "OTEL_PYTHON_SPIKEFORMER_EXTRA_TARGETS: Outer.Inner.missing not found in "
                    f"module {MODULE}; target skipped")]


def test_a_row_that_cannot_be_patched_is_one_internal_error(otel, caplog):
    session = PatchSession(_telemetry(otel), [Target("builtins", "int.bit_length", COMPILATION, "x")],
                           packages=())
    with caplog.at_level(logging.WARNING):
        session.start()
    session.stop()
    assert (7).bit_length() == 3
    assert [r.getMessage() for r in caplog.records] == [
        "spikeformer instrumentation error in patching builtins.int.bit_length "
        "(the instrumented call is unaffected)"]


def _reexporting_module(tmp_path, monkeypatch, name):
    """A real module ``name`` doing ``from MODULE import compile_net, version``."""
    (tmp_path / f"{name}.py").write_text(f"from {MODULE} import compile_net, version\n")
    monkeypatch.syspath_prepend(str(tmp_path))


@pytest.mark.parametrize("imported_first", [True, False])
def test_a_reexport_gets_the_same_wrapper_and_is_restored(otel, tmp_path, monkeypatch,
                                                          imported_first):
    """Whether the re-export was bound before patching or imported after it."""
    import importlib

    name = f"acme_api_{'before' if imported_first else 'after'}"
    _reexporting_module(tmp_path, monkeypatch, name)
    module = types.ModuleType(MODULE)
    module.compile_net, module.version = compile_net, version
    sys.modules[MODULE] = module
    if imported_first:
        importlib.import_module(name)
    rows = [*Target(MODULE, "compile_net", COMPILATION, "acme", aliases=(name,)).expanded(),
            *Target(MODULE, "version", COMPILATION, "acme", aliases=(name,)).expanded()]
    session = PatchSession(_telemetry(otel), rows, packages=())
    session.start()
    try:
        api = importlib.import_module(name)
        for attr in ("compile_net", "version"):
            assert isinstance(api.__dict__[attr], SpikeformerWrapper)
            assert api.__dict__[attr] is module.__dict__[attr]
        api.version()
        assert len(otel.spans("spikeformer.compile acme")) == 1
    finally:
        session.stop()
        del sys.modules[MODULE], sys.modules[name]
    assert api.compile_net is module.compile_net is compile_net
    assert api.version is module.version is version


def test_an_extra_target_in_an_imported_module_without_a_spec_is_not_missing(otel, caplog):
    """``__main__`` of a script and modules built at run time have ``__spec__ = None``
    (``importlib.util.find_spec`` raises on them): they are imported, not missing."""
    module = types.ModuleType(MODULE)
    module.compile_net = compile_net
    assert module.__spec__ is None
    sys.modules[MODULE] = module
    try:
        with caplog.at_level(logging.WARNING, logger=patching.__name__):
            session = PatchSession(_telemetry(otel), [Target(MODULE, "compile_net", COMPILATION,
                                                             "acme", extra=True)], packages=())
        assert caplog.records == []
        session.start()
        assert isinstance(module.compile_net, patching.SpikeformerWrapper)
        session.stop()
    finally:
        del sys.modules[MODULE]
    assert module.compile_net is compile_net


def test_extra_rows_in_modules_not_imported_yet_wait_or_are_skipped(otel, caplog, tmp_path,
                                                                    monkeypatch):
    """An extra row's module may be imported later: a top-level module that cannot
    be found is warned about at once (the row waits for it); a submodule is looked
    for when its parent is imported (warned about there if it is not found) and
    patched when it is imported itself."""
    package = tmp_path / "acme_later"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "present.py").write_text("def run(x):\n    return x + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    rows = [Target("acme_nowhere_at_all", "run", COMPILATION, "acme", extra=True),
            Target("acme_later.absent", "run", COMPILATION, "acme", extra=True),
            Target("acme_later.present", "run", COMPILATION, "acme", extra=True),
            # below a module that is no package: looking for it raises, it is missing
            Target("acme_later.present.deeper", "run", COMPILATION, "acme", extra=True)]
    with caplog.at_level(logging.WARNING, logger=patching.__name__):
        session = PatchSession(_telemetry(otel), rows, packages=())
        session.start()
        try:
            import acme_later  # noqa: F401
            import acme_later.present

            assert isinstance(acme_later.present.__dict__["run"], SpikeformerWrapper)
            assert acme_later.present.run(1) == 2
        finally:
            session.stop()
            for name in ("acme_later", "acme_later.present"):
                sys.modules.pop(name, None)
    assert [r.getMessage() for r in caplog.records] == [
        "OTEL_PYTHON_SPIKEFORMER_EXTRA_TARGETS: module acme_nowhere_at_all not found; "
        "target acme_nowhere_at_all.run waits for it to be imported",
        "OTEL_PYTHON_SPIKEFORMER_EXTRA_TARGETS: module acme_later.absent not found; "
        "target acme_later.absent.run skipped",
        "OTEL_PYTHON_SPIKEFORMER_EXTRA_TARGETS: module acme_later.present.deeper not found; "
        "target acme_later.present.deeper.run skipped"]
    assert [s.name for s in otel.spans()] == ["spikeformer.compile acme"]
