"""Forward hooks that do not travel with the model.

torch pickles and deep-copies a module together with its hook dicts, and our
hooks reference the monitor: a monitored model would not pickle, and every
copy would drag a monitor along. So where a hook dict is still empty (a model a
converter just built), it is replaced by an equal ``_HookDict`` that leaves our
entries out when pickled or copied: the model round-trips exactly as it would
without the plugin and comes back unmonitored. Where the user already holds
hooks in that dict (their handles point at it, so it must stay), our hook is a
``_Detachable``, which pickles as a no-op made of the standard library only
(``functools.partial(sys.audit, ...)``), so the pickle loads without the plugin.

A layer called once per forward is reached more cheaply through ``call_tap``:
a hooked module leaves torch's fast call path, which costs more than the hook.
"""

from __future__ import annotations

import functools
import logging
import sys
import types
import weakref
from collections import OrderedDict
from typing import Any, Callable

_LOG = logging.getLogger(__name__)

# What a hook of ours becomes in a pickle where it cannot be left out: a call
# that returns None (a forward hook's "no change") and does nothing else.
_NOOP_EVENT = "opentelemetry_instrumentation_spikeformer.unpickled_hook"


class _HookDict(OrderedDict):
    """A module's hook dict whose pickled or copied form omits our hooks."""

    def __init__(self) -> None:
        super().__init__()
        self.ours: set[int] = set()

    def __reduce__(self) -> Any:
        kept = [(k, v) for k, v in self.items() if k not in self.ours]
        return OrderedDict, (), None, None, iter(kept)


class _Detachable:
    """Our hook in a dict we could not replace: pickles as a no-op hook."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable) -> None:
        self.fn = fn

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)

    def __reduce__(self) -> Any:
        return functools.partial, (sys.audit, _NOOP_EVENT)


def _own(module: Any, attr: str) -> _HookDict | None:
    """``module.<attr>`` as a ``_HookDict`` (swapped in while empty), else None."""
    current = module.__dict__.get(attr)
    if isinstance(current, _HookDict):
        return current
    if current is None or len(current):
        return None
    fresh = _HookDict()
    module.__dict__[attr] = fresh
    return fresh


def _register(module: Any, attrs: tuple[str, ...], register: Callable, fn: Callable,
              **kwargs: Any) -> Any:
    owned = [_own(module, attr) for attr in attrs]
    hook = fn if owned[0] is not None else _Detachable(fn)
    handle = register(hook, **kwargs)
    for found in owned:
        if found is not None:
            found.ours.add(handle.id)
    return handle


def forward_hook(module: Any, fn: Callable, *, prepend: bool = False,
                 always_call: bool = False) -> Any:
    """``module.register_forward_hook(fn)``, left out of pickles and copies."""
    return _register(module, ("_forward_hooks", "_forward_hooks_always_called"),
                     module.register_forward_hook, fn, prepend=prepend,
                     always_call=always_call)


def forward_pre_hook(module: Any, fn: Callable, with_kwargs: bool = False, *,
                     prepend: bool = False) -> Any:
    """``module.register_forward_pre_hook(fn)``, left out of pickles and copies."""
    return _register(module, ("_forward_pre_hooks", "_forward_pre_hooks_with_kwargs"),
                     module.register_forward_pre_hook, fn, with_kwargs=with_kwargs,
                     prepend=prepend)


class _Tap:
    """A method tap's state: the class's own function and the taps of each
    tapped instance. In the class's place goes ``function``, a plain function
    that calls the taps registered for the calling instance around the
    original: Dynamo inlines a function, where a descriptor whose method breaks
    the graph sends it into endless recursion. The instance itself is untouched
    (nothing to pickle or copy); the class gets its own method back when the
    last tap goes."""

    def __init__(self, klass: type, name: str, original: Callable) -> None:
        self.klass, self.name, self.original = klass, name, original
        self.owned = name in klass.__dict__
        self.taps: "weakref.WeakKeyDictionary[Any, list]" = weakref.WeakKeyDictionary()
        taps_of = self.taps
        code = original.__code__
        first = code.co_varnames[0] if code.co_argcount else None  # (``self``, by any name)

        @functools.wraps(original)  # (inspect.signature follows it to the original)
        def tapped(*args: Any, **kwargs: Any) -> Any:
            # every call of the class's method comes here, tapped instance or
            # not, however it is called: the arguments pass on untouched
            obj = args[0] if args else kwargs.get(first)
            try:
                taps = taps_of.get(obj)
            except TypeError:  # (not an instance we could have tapped)
                taps = None
            if not taps:
                return original(*args, **kwargs)
            inner = args[1:] if args else ()
            shown = kwargs if args else {k: v for k, v in kwargs.items() if k != first}
            for pre, _ in taps:
                if pre is not None:
                    pre(obj, inner, shown)
            out = None
            try:
                out = original(*args, **kwargs)
            finally:
                for _, post in taps:
                    if post is not None:
                        post(obj, inner, out)
            return out

        setattr(tapped, _TAP_MARK, self)
        self.function = tapped

    def release(self) -> None:
        """The class gets its own method back once no live instance has a tap
        (after the last handle's ``remove()``, or the last tapped instance died)."""
        if self.klass.__dict__.get(self.name) is self.function \
                and not any(True for _ in self.taps.keys()):
            if self.owned:
                setattr(self.klass, self.name, self.original)
            else:
                delattr(self.klass, self.name)


_TAP_MARK = "__spikeformer_method_tap__"


def _tap_of(attr: Any) -> _Tap | None:
    """The tap whose function ``attr`` is, if it is one of ours."""
    tap = getattr(attr, _TAP_MARK, None) if type(attr) is types.FunctionType else None
    return tap if isinstance(tap, _Tap) else None


class _NoTap:
    """What ``method_tap`` returns for a method that is not a plain function."""

    def remove(self) -> None:
        pass


class _TapHandle:
    def __init__(self, tap: _Tap, module: Any, entry: tuple) -> None:
        self.tap, self.module, self.entry = tap, weakref.ref(module), entry

    def remove(self) -> None:
        tap, module = self.tap, self.module()
        entries = tap.taps.get(module, []) if module is not None else []
        if self.entry in entries:
            entries.remove(self.entry)
        if not entries and module is not None:
            tap.taps.pop(module, None)
        tap.release()


def method_tap(module: Any, name: str, post: Callable | None = None,
               pre: Callable | None = None) -> Any:
    """Call ``pre(module, args, kwargs)`` / ``post(module, args, output)`` around
    ``module.<name>(...)`` for a method the model calls directly (no module hooks
    fire for it: spikingjelly's ``encoder.encode(x)``). Returns a handle with
    ``remove()``. Runs ``post`` even when the method raises (output ``None``)."""
    klass = type(module)
    tap = _tap_of(klass.__dict__.get(name))
    if tap is None:
        original = next((k.__dict__[name] for k in klass.__mro__ if name in k.__dict__), None)
        if type(original) is not types.FunctionType:  # (the frameworks' tables name methods)
            _LOG.warning("spike monitor: %s.%s is not a plain function; the events of %s are "
                         "not counted", klass.__name__, name, klass.__name__)
            return _NoTap()
        tap = _Tap(klass, name, original)
        setattr(klass, name, tap.function)
    entry = (pre, post)
    entries = tap.taps.get(module)
    if entries is None:
        # a model dropped without detach: its classes get their methods back
        weakref.finalize(module, tap.release).atexit = False
        entries = tap.taps[module] = []
    entries.append(entry)
    return _TapHandle(tap, module, entry)


def taps_on(module: Any) -> int:
    """How many taps of ours ``module`` carries (method taps, a call tap): the
    monitor's part that its ``_forward_hooks`` do not show."""
    methods = sum(len(tap.taps.get(module, ())) for klass in type(module).__mro__
                  for tap in map(_tap_of, vars(klass).values()) if tap is not None)
    return methods + _is_call_tap(module.__dict__.get(_SLOT))


# -- call taps -------------------------------------------------------------------
# ``Module.__call__`` runs ``self._compiled_call_impl`` when that is set (what
# ``module.compile()`` sets), else ``self._call_impl``, which calls ``forward``
# without any hook machinery when the module has no hooks. A call tap fills that
# slot on the instance with a function that runs ``_call_impl`` (the user's hooks
# included) and then ``post``: the module keeps torch's fast path, other instances
# of its class are untouched, and torch's own ``Module.__getstate__`` drops the
# slot, so pickles and deep copies come out unmonitored.
_SLOT = "_compiled_call_impl"
_MARK = "__spikeformer_call_tap__"


def _is_call_tap(fn: Any) -> bool:
    return getattr(fn, _MARK, False) is True


def _slot_free(module: Any) -> bool:
    """Can ``module`` get a call tap? Only where torch calls the slot, the slot
    is empty, and the module's class changes neither the call nor how it is
    copied or pickled (a ``__deepcopy__`` that copies ``__dict__`` would hand
    the copy a tap that runs the original). Not for torch's own modules: a
    compiled block calls them as graph leaves, which runs their hooks but not
    the slot."""
    import torch

    base, klass = torch.nn.Module, type(module)
    return (getattr(base, "_wrapped_call_impl", None) is base.__call__
            and not klass.__module__.startswith("torch.")
            and klass.__call__ is base.__call__
            and klass.__getstate__ is base.__getstate__
            and klass.__reduce_ex__ is base.__reduce_ex__
            and klass.__reduce__ is base.__reduce__
            and getattr(klass, "__deepcopy__", None) is None
            and getattr(klass, "__copy__", None) is None
            and module.__dict__.get(_SLOT) is None)


class _CallTapHandle:
    __slots__ = ("module", "fn", "post")

    def __init__(self, module: Any, fn: Callable, post: Callable) -> None:
        self.module, self.fn, self.post = weakref.ref(module), fn, post

    def lost(self) -> bool:
        """Has someone refilled the slot (``module.compile()`` after attach)?"""
        module = self.module()
        return module is not None and module.__dict__.get(_SLOT) is not self.fn

    def remove(self) -> None:
        module = self.module()
        if module is not None and module.__dict__.get(_SLOT) is self.fn:
            del module.__dict__[_SLOT]  # (a slot someone else refilled is theirs)


def call_tap(module: Any, post: Callable) -> Any:
    """``post(module, args, output)`` after each call of ``module`` that returns,
    like a forward hook (one is registered instead where the slot is not free:
    a compiled module, a class with its own ``__call__`` or pickling). Returns a
    handle with ``remove()``."""
    if not _slot_free(module):
        return forward_hook(module, post)
    ref = weakref.ref(module)  # the module holds this function: no cycle through it
    impl = type(module)._call_impl

    def call(*args: Any, **kwargs: Any) -> Any:
        self = ref()
        output = impl(self, *args, **kwargs)
        post(self, args, output)
        return output

    setattr(call, _MARK, True)
    call.__wrapped__ = impl
    module.__dict__[_SLOT] = call
    _guard_replicas()
    return _CallTapHandle(module, call, post)


def _guard_replicas() -> None:
    """``DataParallel`` replicas copy the module's ``__dict__``: a replica must
    not keep a call tap, which would run the original module. Patched once per
    process and left on: it changes nothing for a module without a tap."""
    import torch

    base = torch.nn.Module
    original = base.__dict__.get("_replicate_for_data_parallel")
    if original is None or getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def replicate(self: Any) -> Any:
        replica = original(self)
        if _is_call_tap(replica.__dict__.get(_SLOT)):
            del replica.__dict__[_SLOT]
        return replica

    setattr(replicate, _MARK, True)
    base._replicate_for_data_parallel = replicate
