"""``core.imports``: one wrapt hook per module name, forwarding to the listeners
of the moment; a failing listener never fails the import."""

from __future__ import annotations

import importlib
import logging
import sys
import uuid

import pytest

from opentelemetry_instrumentation_spikeformer.core import imports


@pytest.fixture
def module_name(tmp_path, monkeypatch):
    """A real module, importable once, under a fresh name."""
    name = f"hooked_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_each_listener_runs_once_per_import_with_one_hook(module_name):
    calls = []
    first, second = (lambda m: calls.append(("first", m.VALUE))), (lambda m: calls.append(("second", m.VALUE)))
    pending = imports.pending_hooks()
    imports.listen(module_name, first)
    imports.listen(module_name, second)
    imports.listen(module_name, first)  # the same listener again: still once
    assert imports.pending_hooks() == pending + 1
    importlib.import_module(module_name)
    assert calls == [("first", 1), ("second", 1)]
    assert imports.pending_hooks() == pending
    imports.listen(module_name, lambda m: calls.append(("late", m.VALUE)))  # already imported: now
    assert calls[-1] == ("late", 1)
    imports.unlisten(first)
    imports.unlisten(second)


def test_an_unlistened_listener_is_not_called(module_name):
    calls = []
    kept, dropped = (lambda m: calls.append("kept")), (lambda m: calls.append("dropped"))
    imports.listen(module_name, kept)
    imports.listen(module_name, dropped)
    imports.unlisten(dropped)
    imports.unlisten(dropped)  # twice: no error
    importlib.import_module(module_name)
    assert calls == ["kept"]
    imports.unlisten(kept)


def test_a_failing_listener_is_one_warning_and_the_import_succeeds(module_name, caplog):
    def broken(module):
        raise RuntimeError("listener bug")

    imports.listen(module_name, broken)
    with caplog.at_level(logging.WARNING):
        assert importlib.import_module(module_name).VALUE == 1
    imports.unlisten(broken)
    assert [r.getMessage() for r in caplog.records] == [
        f"spikeformer instrumentation error in import hook for {module_name} "
        "(the instrumented call is unaffected)"]
