"""Dataflow-exact synaptic operations of a monitored model, forward by forward.

``Topology`` owns the hooks that count: a pre-hook and a forward hook on the
model (what one forward is), one call tap per event source (``hooks.call_tap``;
a forward hook where the module's call slot is taken, a method tap where the
model calls ``encode``), one forward hook per module that returns a derived
source (a max pool of spikes). The first forward with a new input signature is
traced (``dataflow``) and planned (``plan``); it and every later forward of
that signature are counted by its ``Tally``. At most ``MAX_PLANS`` signatures
get a plan; forwards of others are not counted (one warning).

The model is held weakly: the monitor must not keep the user's model alive.
"""

from __future__ import annotations

import logging
import sys
import weakref
from typing import Any

from ..core.errors import log_internal_error
from ..frameworks import base as fb
from . import dataflow as df
from . import hooks, lemaire
from . import plan as planning
from .accumulate import Sequencer
from .tally import Tally, compile_nodes

_LOG = logging.getLogger(__name__)
MAX_PLANS = 8  # input signatures with their own plan (a shape change needs a new trace)
MAX_FAILED = 3  # failed discovery passes before giving up on a model


class Topology:
    """Discovery, per-forward counting and the read of one monitored model."""

    def __init__(self, root: Any, layer_ids: Any, sequencer: Any = None) -> None:
        global _stack, _TENSOR, _compiling, _compiled, _transformed, _tracing
        import torch

        _stack = torch._C._len_torch_dispatch_stack
        _TENSOR = torch.Tensor
        _compiling, _compiled = _compile_probes(torch)
        _tracing = getattr(torch.compiler, "is_dynamo_compiling", None) or _compiling
        _transformed = getattr(getattr(torch._C, "_functorch", None), "peek_interpreter_stack",
                               _never)
        self._root = weakref.ref(root)
        self._layer_ids = layer_ids  # id(module) -> LayerState
        self.sequencer = sequencer if sequencer is not None else Sequencer(1)
        self._handles: list[Any] = []
        self._capture_handles: dict[int, Any] = {}
        self.tallies: dict[tuple, Tally] = {}
        self.current: Tally | None = None
        self.discovering: df.Graph | None = None
        self._tracer: Any = None
        self._depth = 0
        self._failed = 0
        self._warned = False
        self._warned_trace = False
        self._warned_lost = False
        self._warned_compiled = False
        self._warned_transform = False
        self._compiled_seen = False  # a forward ran under torch.compile (said once)
        # torch.compile(model) monitored: its hooks run outside the compiled call
        self._compiled_root = type(root).__name__ == "OptimizedModule"
        # the model is itself one spiking layer: its output is counted by the
        # model's own forward hook (a call tap's would run after the forward ended)
        self._root_is_source = id(root) in layer_ids
        self._retired: list[Tally] = []  # plans replaced after a shape change, still counted
        self.order: list[int] = []  # id of each source module in execution order
        self.on_forward_end: Any = None  # WeakMethod: monitor callback(tally) after a forward

    @property
    def done(self) -> bool:
        return bool(self.tallies)

    # -- hooks ------------------------------------------------------------------
    def start(self) -> None:
        root = self._root()
        if root is None:
            return
        add = self._handles.append
        add(hooks.forward_pre_hook(root, self._root_pre, with_kwargs=True, prepend=True))
        add(hooks.forward_hook(root, self._root_post, prepend=True, always_call=True))
        for module_id, layer in self._layer_ids.items():
            module = layer.module()
            if module is None:
                continue
            # a call tap, not a forward hook: a hooked module leaves torch's fast
            # call path (about 1 % of QKFormer's forward at batch 8 for 25 layers),
            # nor a class-level tap on ``forward``, whose descriptor every instance
            # of the class pays, monitored or not
            if layer.rule.entry == "forward":
                if module is not root:
                    add(hooks.call_tap(module, self._source_hook))
            else:
                add(hooks.method_tap(module, layer.rule.entry, post=self._source_hook))

    def stop(self) -> None:
        self._end_discovery(None, keep=False)
        for handle in self._handles + list(self._capture_handles.values()):
            handle.remove()
        self._handles = []
        self._capture_handles = {}

    def finalize(self) -> None:
        """Kept for callers of the former shape-only pass: plans are built when
        their discovery forward ends."""

    # -- one forward --------------------------------------------------------------
    def _root_pre(self, module: Any, args: tuple, kwargs: dict | None = None) -> None:
        if _compiling() or self._compiled_root:
            return self._not_counted()
        if _compiled():  # run eagerly in a compiled call (Dynamo skipped the frame)
            return _eager(Topology._root_pre)(self, module, args, kwargs)
        if self._compiled_seen and not self._warned_compiled:
            self._say_compiled()
        self._depth += 1
        if self._depth > 1:
            return
        kwargs = kwargs or {}  # (None: torch calls a keyword hook removed during the call)
        try:
            if _stack():  # a tracer or profiler is on: our work stays out of its sight
                with _hidden():
                    self._start_forward(module, args, kwargs)
            else:
                self._start_forward(module, args, kwargs)
        except Exception:
            self.current = None
            log_internal_error("spike monitor forward start")
            self._abandon()

    def _not_counted(self) -> None:
        """A forward under ``torch.compile``: not counted. Discovery traces an
        eager forward under a dispatch mode, and Dynamo never compiles a frame
        it first met under one: counting would quietly run the model
        uncompiled. So our hooks stay out of the user's graphs. Traced, this
        only sets attributes (Dynamo replays them after its graph): no graph
        break, which ``fullgraph=True`` would make an error, and no log call,
        which would be one; it is said once, at the next eager forward or
        collection (``_say_compiled``). Only reads would become guards."""
        self.current = None  # (the sources' hooks return at once, traced or not)
        self.sequencer.uncounted = True  # (and so do the lead layer's)
        self._compiled_seen = True
        if self._compiled_root:  # (our hooks around a compiled module: eager)
            self._say_compiled()

    def _not_counted_transform(self) -> None:
        """A forward inside ``torch.func.vmap`` / ``grad`` / ``jvp``: its tensors
        are functorch wrappers, which our reductions into a buffer (``out=``)
        cannot take. Not counted, said once."""
        self.current = None
        self.sequencer.uncounted = True  # (the lead layer's hooks return: no sequence)
        self._warn_once("_warned_transform", "spike monitor: %s runs under a torch.func "
                        "transform (vmap, grad, jvp); its forwards there are not counted. "
                        "Count spikes on a plain run of the model.")

    def _say_compiled(self) -> None:
        self._warn_once("_warned_compiled", "spike monitor: %s runs under torch.compile; its "
                        "forwards are not counted (tracing one would keep Dynamo from "
                        "compiling it). Count spikes on an eager run of the model.")

    def _warn_once(self, flag: str, message: str) -> None:
        """``message`` with the model's class name, the first time ``flag`` is set."""
        if not getattr(self, flag):
            setattr(self, flag, True)
            root = self._root()
            _LOG.warning(message, type(root).__name__ if root is not None else "the model")

    def _start_forward(self, module: Any, args: tuple, kwargs: dict) -> None:
        if _transformed() is not None:
            return self._not_counted_transform()
        seq = self.sequencer
        seq.uncounted = False
        if seq.lead_per_forward:
            seq.begin()
        signature = _signature(args, kwargs)
        tally = self.tallies.get(signature)
        if tally is not None and not tally.stale:
            tally.begin()
            self.current = tally
            return
        self.current = None
        if len(self.tallies) < MAX_PLANS and self._failed < MAX_FAILED:
            self._begin_discovery(module, signature, args, kwargs)
        elif not self._warned:
            self._warned = True
            _LOG.warning("spike monitor: more than %d input shapes (or failed discovery); "
                         "forwards of new shapes are not counted", MAX_PLANS)

    def _root_post(self, _module: Any, _args: tuple, output: Any) -> None:
        if _compiling() or self._compiled_root:
            return  # (the forward is not counted: _not_counted)
        if _compiled():
            return _eager(Topology._root_post)(self, _module, _args, output)
        self._depth -= 1
        if self._depth > 0:
            return
        self._depth = 0
        # (always_call: torch calls this hook from its except block when the
        # forward raised, with no output)
        raised = output is None and sys.exc_info()[1] is not None
        try:
            if _stack():
                with _hidden():
                    self._finish_forward(output, raised)
            else:
                self._finish_forward(output, raised)
        except Exception:
            self.current = None
            log_internal_error("spike monitor forward end")
            self._abandon()

    def _finish_forward(self, output: Any, raised: bool = False) -> None:
        if self._root_is_source:
            self._root_source(output)
        if self.discovering is not None:
            self._end_discovery(output, keep=not raised)  # (a part of a forward: no plan)
            return
        tally, self.current = self.current, None
        if tally is None:
            return
        if raised:  # not a forward: what its layers gave before it raised is not counted
            tally.deferred = []
            tally.stash = {}
            return
        if not self._active():
            tally.deferred = []  # a forward the sampling skips: nothing to count
        if tally.deferred and not tally.stale:
            tally.flush()  # may find the layout changed (stale)
        if tally.stale:  # shapes changed inside: the next forward traces a new plan
            tally.deferred = []
            self.tallies.pop(tally.plan.signature, None)
            self._retired.append(tally)
        elif self._active() and tally.end():  # (a skipped forward's: dropped above)
            self._forward_end(tally)

    def _root_source(self, output: Any) -> None:
        """The output of a model that is itself one spiking layer, before its
        forward ends: a source like any other."""
        root = self._root()
        if root is None:
            return
        if self.discovering is not None:
            self.discovering._guarded(self.discovering.post_forward, root, output)
        else:
            self._source_hook(root, (), output)

    def _source_hook(self, module: Any, _args: Any, output: Any) -> None:
        """The hot path: called after each source's call (its call tap, or
        forward hook), once per source per forward. The common case (a module
        called once whose float32 output is its events, ``Tally.fast``) is
        kept with its version for the end of the forward, checked and counted
        there (``Tally.flush``). A large one is checked and counted here, while
        it is still in the cache (``Tally.take``); so is every output under
        ``inference_mode``, which has no version counter."""
        tally = self.current
        if tally is None or output is None:
            return  # (None: a tapped method raised, where a forward hook would not run)
        # (as in _root_pre; is_dynamo_compiling() first, which Dynamo folds:
        # a C call Dynamo cannot trace would break the user's graph where it
        # traces this hook with a forward being counted, a layer compiled
        # after attach; in eager it is one call, is_compiling() two)
        if not _tracing() and _compiled():
            return _eager(Topology._source_hook)(self, module, _args, output)
        try:
            fast = tally.fast.get(id(module))
            fast = fast if fast is not None and type(output) is _TENSOR else None
            if fast is not None and fast[5] and not tally.inference:
                try:
                    version = output._version
                except RuntimeError:  # an inference tensor made outside inference mode
                    pass
                else:
                    tally.deferred.append((output, version, fast))
                    return
            if not self.sequencer.active:
                return
            if _stack():  # a profiler's dispatch mode is on: hide our ops from it
                with _hidden():
                    tally.on_source(id(module), output)
            elif fast is not None:
                if tally.deferred:
                    tally.flush()
                tally.take(output, fast)
            else:
                tally.on_source(id(module), output)
        except Exception:
            log_internal_error("spike monitor hook")

    def _capture_hook(self, module: Any, _args: Any, output: Any) -> None:
        tally = self.current
        if tally is None or not self._active():
            return
        if not _tracing() and _compiled():  # (as in _source_hook)
            return _eager(Topology._capture_hook)(self, module, _args, output)
        try:
            if _stack():  # a profiler's dispatch mode is on: hide our ops from it
                with _hidden():
                    tally.on_capture(id(module), output)
            else:
                tally.on_capture(id(module), output)
        except Exception:
            log_internal_error("spike monitor hook")

    def _active(self) -> bool:
        return self.sequencer.active

    def _forward_end(self, tally: Tally) -> None:
        callback = self.on_forward_end and self.on_forward_end()
        if callback is not None:
            callback(tally)

    # -- discovery ------------------------------------------------------------------
    def _begin_discovery(self, root: Any, signature: tuple, args: tuple, kwargs: dict) -> None:
        names = {id(m): (n or type(m).__name__) for n, m in root.named_modules()}
        graph = df.Graph(root, names, {key: layer.output for key, layer in self._layer_ids.items()})
        graph.signature = signature
        graph.scopes.append(names[id(root)])  # the root's own forward body
        graph.install(root)
        self.discovering = graph
        self._tracer = df.make_tracer(graph)
        self._tracer.__enter__()
        if self._root_is_source:  # (its inside is opaque, as any source's)
            graph._guarded(graph.pre, root, args, kwargs)

    def _end_discovery(self, output: Any, keep: bool) -> None:
        graph, self.discovering = self.discovering, None
        if graph is None:
            return
        tracer, self._tracer = self._tracer, None
        try:
            tracer.__exit__(None, None, None)
        finally:
            graph.uninstall()
        if not keep:
            return
        if not graph.sources:
            self._failed += 1
            return
        self._failed += 1  # until the plan stands: a failing build is not retried forever
        first = graph.sources[0]
        graph.finish(output, (first.steps, first.batch), first.layout == fb.SQUEEZE)
        built = planning.build(graph, graph.signature)
        moved = {i for i, v in graph.source_version.items()
                 if graph.source_out[i]._version != v}
        tally = Tally(built, compile_nodes(built), modified=moved)
        self._failed -= 1
        if built.errors and not self._warned_trace:
            self._warned_trace = True
            _LOG.warning("spike monitor: %d op(s) of %s could not be traced; its synops may "
                         "miss them (first: %s)", len(built.errors),
                         type(self._root()).__name__, built.errors[0][:200])
        self.tallies[graph.signature] = tally
        self.order = [id(s.module()) for s in built.sources if s.module() is not None]
        self._watch_captures(tally)
        # the traced forward counts like any other, unless a source's output was
        # changed in place after its layer returned it (its count would be of that)
        if self._active() and not moved:
            tally.begin()
            for s in built.sources:
                out = graph.source_out.get(s.index)
                if out is not None:
                    tally.source(s.index, out)
            for s in built.sources:  # captured leaves: recomputed once from the sources
                leaf = tally.leaf_of.get(s.index)
                if leaf is not None and s.index in graph.source_out:
                    tally.stash.setdefault(leaf.node, graph.source_out[s.index])
            for leaf in built.leaves:  # (stashed already where another program needed it)
                if leaf.capture is not None:
                    value = tally._program(leaf.program)
                    if value is not None:
                        tally.add(leaf, value)
            tally.end()
            self._forward_end(tally)

    def _abandon(self) -> None:
        """After a failure of ours: no tracer of ours may outlive the forward (it
        would trace, and keep alive, every later op of the process)."""
        try:
            self._end_discovery(None, keep=False)
        except Exception:
            log_internal_error("spike monitor discovery end")

    def _watch_captures(self, tally: Tally) -> None:
        for leaf in tally.plan.leaves:
            module = leaf.capture[0]() if leaf.capture is not None else None
            if module is not None and id(module) not in self._capture_handles:
                self._capture_handles[id(module)] = hooks.call_tap(module, self._capture_hook)

    # -- read ------------------------------------------------------------------------
    def reset(self) -> None:
        for tally in self.tallies.values():
            tally.reset()
        self._retired = []

    def _heal_taps(self) -> None:
        """A call tap whose slot someone refilled (``module.compile()`` after
        attach) no longer runs: that module gets a forward hook instead, which a
        compiled call still runs (checked at each read, off the forward path)."""
        def healed(handle: Any) -> Any:
            if not (isinstance(handle, hooks._CallTapHandle) and handle.lost()):
                return handle
            module = handle.module()
            if not self._warned_lost:
                self._warned_lost = True
                _LOG.warning("spike monitor: %s's call was replaced after the monitor "
                             "attached (module.compile()?); it is counted through a forward "
                             "hook from now on, forwards before this collection missed it",
                             type(module).__name__)
            return hooks.forward_hook(module, handle.post)

        self._handles = [healed(h) for h in self._handles]
        self._capture_handles = {k: healed(h) for k, h in self._capture_handles.items()}

    def read(self) -> list[tuple[Any, dict]]:
        """(plan, host numbers) per counted plan: one transfer per device."""
        import torch

        self._heal_taps()
        if self._compiled_seen:
            self._say_compiled()

        tallies = [t for t in list(self.tallies.values()) + list(self._retired) if t.forwards]
        by_device: dict[Any, list[tuple[Tally, list, list]]] = {}
        for tally in tallies:
            parts, index = tally.device_parts()
            by_device.setdefault(tally.device, []).append((tally, parts, index))
        out = []
        with torch.inference_mode(False), torch.no_grad():
            for entries in by_device.values():
                flat_parts = [p.reshape(-1).to(torch.float64) for _, parts, _ in entries
                              for p in parts]
                flat = torch.cat(flat_parts).cpu().tolist() if flat_parts else []
                at = 0
                for tally, parts, index in entries:
                    sizes = [p.numel() for p in parts]
                    size = sum(sizes)
                    out.append((tally.plan, tally.host(flat[at:at + size], index, sizes)))
                    at += size
        return out


# bound when a Topology is made (torch is imported lazily): the dispatch-mode
# stack's length, torch.Tensor
_stack: Any = None
_TENSOR: Any = None
# torch.compile: is_compiling() is true while Dynamo traces (our hook inside
# the user's compiled forward: the forward is not counted); the eval-frame
# callback is set while a compiled function runs (our hook called from a frame
# Dynamo skipped, run eagerly: counted, with Dynamo off for our own frames)
_compiling: Any = None
_compiled: Any = None
_transformed: Any = None  # the innermost torch.func transform (vmap, grad), or None
_tracing: Any = None  # is_dynamo_compiling(): one Python call returning False in eager
_EAGER: dict = {}


def _never() -> bool:
    return False


def _compile_probes(torch: Any) -> tuple:
    """(is_compiling, eval-frame callback) as this torch has them (torch >= 2.1)."""
    compiler = getattr(torch, "compiler", None)
    compiling = getattr(compiler, "is_compiling", None) or _never
    frame = getattr(getattr(torch._C, "_dynamo", None), "eval_frame", None)
    return compiling, getattr(frame, "get_eval_frame_callback", None) or _never


def _eager(fn: Any) -> Any:
    """``fn`` out of Dynamo's sight: where it traces, a graph break and ``fn``
    run eagerly there; with no frame in it compiled."""
    found = _EAGER.get(fn)
    if found is None:
        import torch

        found = _EAGER[fn] = torch.compiler.disable(fn, recursive=True)
    return found


def _modes() -> int:
    """Python dispatch modes active on this thread (a profiler's, a tracer's)."""
    import torch

    return torch._C._len_torch_dispatch_stack()


class _hidden:
    """Our own tensor work, invisible to other code's dispatch modes (a profiler
    counting ops must not count ours). Our discovery tracer is entered inside."""

    __slots__ = ("guard",)
    _keys: Any = None

    def __enter__(self) -> None:
        import torch

        self.guard = None
        if not _modes():
            return
        if _hidden._keys is None:
            _hidden._keys = torch._C.DispatchKeySet(torch._C.DispatchKey.Python)
        self.guard = torch._C._ExcludeDispatchKeyGuard(_hidden._keys)
        self.guard.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self.guard is not None:
            self.guard.__exit__(*exc)


def _signature(args: tuple, kwargs: dict) -> tuple:
    """Shapes, dtypes and devices of the tensors a forward is called with."""
    if len(args) == 1 and not kwargs and type(args[0]) is _TENSOR:  # the common call
        x = args[0]
        return ((tuple(x.shape), x.dtype, x.device),)
    sig = []
    for value in (*args, *kwargs.values()):
        shape = getattr(value, "shape", None)
        if shape is not None:
            sig.append((tuple(shape), value.dtype, value.device))
        elif isinstance(value, (list, tuple)):
            sig.append(tuple(tuple(getattr(v, "shape", ())) for v in value))
        else:
            sig.append(type(value).__name__)
    return tuple(sig)


def summarize(topology: Topology, layers: list, detail: bool = False,
              lemaire_cost: lemaire.Cost = lemaire.COST) -> dict[str, Any]:
    """Per-layer and model totals from ``Topology.read()``: events, magnitude,
    SOPs by category, neuron updates; dense MACs; the energy models' inputs."""
    by_module = {id(layer.module()): layer for layer in layers if layer.module() is not None}
    rows: dict[int, dict[str, Any]] = {}
    totals = _zero_totals()
    consumers: list[dict] = []
    memory = None
    for plan, host in topology.read():
        forwards = host["forwards"]
        layer_of_source = {}
        for s in plan.sources:
            module = s.module()
            layer = by_module.get(id(module)) if module is not None else None
            layer_of_source[s.index] = layer
            if layer is None:
                continue
            row = rows.setdefault(id(layer), _zero_row())
            numel = _prod(s.shape)
            row["neuron_steps"] += numel * forwards
            row["timesteps"] += s.steps * forwards
            row["forwards"] += forwards
            row["sample_steps"] += s.batch * s.steps * forwards
            row["neurons"] = _prod(s.shape[s.lead:])
        leaf_rows = {}
        for leaf in plan.leaves:
            layer = layer_of_source.get(leaf.owner) if leaf.owner is not None else None
            row = rows.setdefault(id(layer), _zero_row()) if layer is not None else None
            leaf_rows[leaf.node] = row
            if row is not None and (leaf.maps or leaf.const):
                row["consumed"] = True
            if leaf.kind == "source" and row is not None:
                events = host["events"].get(leaf.node, 0.0)
                row["spikes"] += events
                row["magnitude"] += host["magnitude"].get(leaf.node, events)
        for c in plan.consumers:
            if c.kind == "census_add":
                totals["census_spike_adds"] += host["sops"][c.id]
                continue
            value = host["sops"][c.id]
            totals["synops"][c.category] += value
            if c.kind in ("reduce", "accumulate"):
                totals["adds"][c.category] += value
            elif c.category == df.SPIKES and c.values == fb.BINARY:
                totals["binary_weight_synops"] += value
            if not (c.kind in ("linear", "product") and c.category == df.SPIKES
                    and c.values == fb.BINARY):
                if c.kind in ("linear", "product"):
                    totals["nonbinary_weight_macs"] += c.dense_macs * forwards
            if detail:
                consumers.append({"scope": c.scope, "kind": c.kind, "op": c.op, "seq": c.seq,
                                  "category": c.category, "values": c.values, "synops": value,
                                  "events_in": host["entering"].get(c.id, 0.0),
                                  "dense_macs": c.dense_macs * forwards})
        for leaf in plan.leaves:
            row = leaf_rows.get(leaf.node)
            if row is None:
                continue
            for cid, value in host["per_leaf"].get(leaf.node, {}).items():
                c = plan.consumers[cid]
                if c.kind != "census_add":
                    row["synops_by_input"][c.category] += value
        for p in plan.products:
            layer = layer_of_source.get(p.owner) if p.owner is not None else None
            if layer is not None:
                row = rows.setdefault(id(layer), _zero_row())
                row["consumed"] = True
                row["synops_by_input"][plan.consumers[p.consumer].category] += \
                    host["sops"][p.consumer]
        for mac in plan.macs:
            macs = mac.macs * forwards
            if mac.encoding:
                new = host["new_steps"].get(id(mac))
                totals["encoding_macs_every_step"] += macs
                totals["encoding_macs"] += macs * (new / mac.steps if new is not None else 1.0)
            else:
                totals["graded_macs"] += macs
            totals["nonbinary_weight_macs"] += macs
        totals["ann_macs"] += plan.ann_macs_per_sample() * forwards
        totals["census_ac"] += (plan.census_ac + host["census_lazy"]) * forwards
        totals["census_mac_bn"] += plan.census_mac_bn * forwards
        totals["forwards"] += forwards
        memory = lemaire.add(memory, lemaire.estimate(plan, host, lemaire_cost))
    for row in rows.values():
        row["synops"] = sum(row["synops_by_input"].values())
    return {"rows": rows, "totals": totals, "consumers": consumers, "memory": memory}


def _zero_row() -> dict[str, Any]:
    return {"spikes": 0.0, "magnitude": 0.0, "synops": 0.0,
            "synops_by_input": {k: 0.0 for k in df.CATEGORIES}, "neuron_steps": 0,
            "timesteps": 0, "forwards": 0, "sample_steps": 0, "neurons": 0, "consumed": False}


def _zero_totals() -> dict[str, Any]:
    return {"synops": {k: 0.0 for k in df.CATEGORIES}, "adds": {k: 0.0 for k in df.CATEGORIES},
            "binary_weight_synops": 0.0, "nonbinary_weight_macs": 0.0, "encoding_macs": 0.0,
            "encoding_macs_every_step": 0.0, "graded_macs": 0.0, "ann_macs": 0.0,
            "census_ac": 0.0, "census_mac_bn": 0.0, "census_spike_adds": 0.0, "forwards": 0}


def _prod(shape: tuple) -> int:
    out = 1
    for d in shape:
        out *= int(d)
    return out


__all__ = ["MAX_PLANS", "Topology", "summarize"]
