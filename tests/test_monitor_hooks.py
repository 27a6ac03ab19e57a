"""``monitor/hooks.py`` on its own: a method tap passes every call through
unchanged and shows it to its taps; its handles are safe to remove twice or
after the module died, and the class gets its own method back."""

from __future__ import annotations

import gc
import inspect

import pytest

import torch

from opentelemetry_instrumentation_spikeformer.monitor import hooks


class Encoder(torch.nn.Module):
    def encode(self, x, scale=1.0):
        if scale < 0:
            raise ValueError("negative scale")
        return x * scale


class Other(torch.nn.Module):
    def encode(self, x, scale=1.0):
        return x + scale


def _is_function(klass) -> bool:
    """The class's own method is back (not our tap's function)."""
    return hooks._tap_of(klass.__dict__["encode"]) is None


def test_a_method_tap_passes_calls_through_and_shows_them():
    a, b, plain = Encoder(), Encoder(), Encoder()
    seen = []  # (the taps keep it, and it keeps the modules: handles removed at the end)
    handles = [
        hooks.method_tap(a, "encode", pre=lambda m, args, kw: seen.append(("pre", m, args, dict(kw))),
                         post=lambda m, args, out: seen.append(("post", m, args, out))),
        hooks.method_tap(b, "encode", post=lambda m, args, out: seen.append(("post b", m, args, out)))]
    tap = hooks._tap_of(Encoder.__dict__["encode"])
    assert tap is not None
    x = torch.ones(2)
    out = a.encode(x, scale=3.0)
    assert torch.equal(out, x * 3)
    assert seen[0][:3] == ("pre", a, (x,)) and seen[0][3] == {"scale": 3.0}
    assert seen[1][:3] == ("post", a, (x,)) and seen[1][3] is out
    seen.clear()
    b.encode(x)
    plain.encode(x)
    assert [s[0] for s in seen] == ["post b"] and seen[0][1] is b
    seen.clear()
    with pytest.raises(ValueError, match="negative scale"):
        a.encode(x, scale=-1.0)
    assert [s[0] for s in seen] == ["pre", "post"] and seen[1][3] is None  # raised: no output
    assert Encoder.__dict__["encode"] is tap.function  # one tap per class, however many instances
    assert Encoder.encode.__wrapped__ is tap.original  # read on the class: a plain function
    assert Encoder.encode.__name__ == "encode"
    assert inspect.signature(a.encode) == inspect.signature(plain.encode)
    assert hooks.taps_on(a) == 1 and hooks.taps_on(plain) == 0
    for handle in handles:
        handle.remove()
    assert _is_function(Encoder)


def test_method_tap_handles_remove_once_and_give_the_class_its_method_back():
    a, b = Encoder(), Encoder()
    first = hooks.method_tap(a, "encode", post=lambda *_: None)
    second = hooks.method_tap(b, "encode", post=lambda *_: None)
    first.remove()
    first.remove()  # twice: nothing more
    assert hooks.taps_on(a) == 0 and hooks.taps_on(b) == 1
    assert not _is_function(Encoder)
    second.remove()
    assert _is_function(Encoder)
    c = Other()
    dead = hooks.method_tap(c, "encode", post=lambda *_: None)
    del c
    gc.collect()
    assert _is_function(Other)  # the last tapped instance died: the class is restored
    dead.remove()  # and removing its handle later is harmless
    assert torch.equal(Other().encode(torch.zeros(1)), torch.ones(1))


def test_a_method_that_is_not_a_plain_function_is_left_alone(caplog):
    class Static(torch.nn.Module):
        @staticmethod
        def encode(x):
            return x

    handle = hooks.method_tap(Static(), "encode", post=lambda *_: None)
    assert isinstance(Static.__dict__["encode"], staticmethod)
    assert any("Static.encode is not a plain function" in r.getMessage() for r in caplog.records)
    handle.remove()
    assert torch.equal(Static.encode(torch.ones(1)), torch.ones(1))


def test_a_tapped_method_takes_its_arguments_as_before():
    """The tap is the class's method for every instance while it is on: any
    argument names, and the instance passed by keyword, still work."""
    class Named(torch.nn.Module):
        def encode(self, x, obj=None):
            return x + (0 if obj is None else obj)

    a, plain, seen = Named(), Named(), []
    handle = hooks.method_tap(a, "encode", post=lambda m, args, out: seen.append((m, args, out)))
    x = torch.ones(1)
    try:
        assert torch.equal(a.encode(x, obj=1), x + 1)
        assert torch.equal(Named.encode(self=a, x=x), x)
        assert torch.equal(Named.encode(plain, x, 2), x + 2)
    finally:
        handle.remove()
    assert [(m, args) for m, args, _ in seen] == [(a, (x,)), (a, ())]


def test_a_method_tap_is_a_plain_function_dynamo_can_trace():
    """A model whose tapped method breaks Dynamo's graph (a branch on a value):
    a descriptor there sent Dynamo into endless recursion."""
    class Branchy(torch.nn.Module):
        def encode(self, x):
            return x * 2 if bool((x > 0).any()) else x

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc, self.fc = Branchy(), torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.enc.encode(x))

    from torch import _dynamo

    model, seen = Model(), []
    handle = hooks.method_tap(model.enc, "encode", post=lambda m, a, out: seen.append(out))
    x = torch.ones(3, 4)
    try:
        out = torch.compile(model, backend="eager")(x)
    finally:
        _dynamo.reset()
        handle.remove()
    assert torch.equal(out, model(x)) and len(seen) == 1 and torch.equal(seen[0], x * 2)


def test_dataparallel_replicas_are_guarded_once_per_process():
    """The first call tap wraps ``Module._replicate_for_data_parallel`` (a replica
    must not keep a tap running the original); later taps leave it as it is."""
    from spikingjelly.activation_based import neuron

    layers = [neuron.IFNode(step_mode="m") for _ in range(3)]
    handles = [hooks.call_tap(m, lambda *_: None) for m in layers]
    guard = torch.nn.Module.__dict__["_replicate_for_data_parallel"]
    assert hooks._is_call_tap(guard)
    assert not hooks._is_call_tap(guard.__wrapped__)  # one wrapper, around torch's own
    handles.append(hooks.call_tap(neuron.IFNode(step_mode="m"), lambda *_: None))
    assert torch.nn.Module.__dict__["_replicate_for_data_parallel"] is guard
    replica = layers[0]._replicate_for_data_parallel()
    assert "_compiled_call_impl" not in replica.__dict__
    for handle in handles:
        handle.remove()
    assert all("_compiled_call_impl" not in m.__dict__ for m in layers)


class Scaled(torch.nn.Module):
    def forward(self, x, scale=1.0):
        if scale < 0:
            raise ValueError("negative scale")
        return x * scale


def test_a_call_tap_passes_calls_through_and_shows_them():
    """Arguments and keywords reach the module, ``post`` gets the module, the
    positional arguments and the output; a raise reaches the caller unchanged
    and ``post`` is not called (like a forward hook); ``__wrapped__`` is the call
    the tap runs."""
    module, seen = Scaled(), []
    handle = hooks.call_tap(module, lambda m, args, out: seen.append((m, args, out)))
    slot = module.__dict__["_compiled_call_impl"]
    assert slot.__wrapped__ is Scaled._call_impl and not module._forward_hooks
    x = torch.ones(3)
    out = module(x, scale=2.0)
    assert torch.equal(out, x * 2) and seen == [(module, (x,), out)]
    with pytest.raises(ValueError, match="negative scale"):
        module(x, scale=-1.0)
    assert len(seen) == 1
    handle.remove()
    handle.remove()
    assert "_compiled_call_impl" not in module.__dict__ and torch.equal(module(x), x)
