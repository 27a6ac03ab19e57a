"""nengo-loihi 1.1.0 (``.venv-loihi``: nengo 3.2.0, numpy < 2): a real build and
real allocations; spans and core metrics against ``sim.model``, the blocks'
own ``utilization()`` and the allocators' boards."""

from __future__ import annotations

import gc
import subprocess
import sys
import warnings
import weakref

import pytest

import nengo
import numpy as np
import nengo_loihi
from nengo_loihi.hardware import interface as hardware_interface
from nengo_loihi.hardware.allocators import Greedy, GreedyInterchip, RoundRobin
from nengo_loihi.hardware.validate import validate_board

from launched import launch

COMPILE = "spikeformer.compile nengo_loihi"
CORES_PER_CHIP = 128  # Loihi 1


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def network():
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(lambda t: np.sin(10 * t))
        a = nengo.Ensemble(1500, 1, label="a")  # > 1024 compartments: split into two blocks
        b = nengo.Ensemble(200, 2, label="b")
        nengo.Connection(stim, a)
        nengo.Connection(a, b, function=lambda x: [x[0], x[0] ** 2])
        nengo.Connection(b, a, function=lambda x: x[0] * x[1])
        nengo.Probe(b, synapse=0.01)
    return net


@pytest.fixture
def built(instrument, otel):
    instrument()
    with nengo_loihi.Simulator(network(), target="sim") as sim:
        yield sim


@pytest.fixture(scope="module")
def model():
    """One build (not traced) for the allocation tests: the build is the slow part."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with nengo_loihi.Simulator(network(), target="sim") as sim:
            return sim.model


@pytest.fixture
def allocating(model, instrument):
    instrument()
    return model


def _children(otel, parent):
    return [s.name for s in sorted(otel.spans(), key=lambda s: s.start_time)
            if s.parent is not None and s.parent.span_id == parent.context.span_id]


def _gauge(otel, name, key):
    return {p.attributes.get(key): p.value for p in otel.points(name)}


def test_build_is_one_compile_span_with_a_child_per_step(built, otel):
    [span] = otel.spans(COMPILE)
    assert _children(otel, span) == ["spikeformer.stage split", "spikeformer.stage discretize",
                                     "spikeformer.stage validate",
                                     "spikeformer.stage emulator build"]
    seconds = (span.end_time - span.start_time) / 1e9
    assert abs(seconds - built.timers["build"]) <= 0.2 * built.timers["build"]
    assert span.attributes["spikeformer.hardware.target"] == "loihi"
    assert span.attributes["spikeformer.model.type"] == "Network"
    assert span.attributes["loihi.target"] == "sim"


def test_build_numbers_are_the_models_own(built, otel):
    model = built.model
    used = [block.utilization() for block in model.blocks]
    attrs = otel.spans(COMPILE)[0].attributes
    assert attrs["loihi.blocks"] == len(model.blocks) == 6
    assert attrs["loihi.compartments"] == sum(u["compartments"][0] for u in used)
    assert attrs["loihi.synapse_bits"] == sum(u["synapses"][0] for u in used)
    assert attrs["loihi.in_axons"] == sum(u["in-axons"][0] for u in used)
    assert attrs["loihi.out_axons"] == sum(u["out-axons"][0] for u in used)
    split = otel.spans("spikeformer.stage split")[0].attributes
    assert (split["loihi.blocks_before_split"], split["loihi.blocks_after_split"]) == (5, 6)
    assert otel.value("neuromorphic.compile.blocks", target_hardware="loihi") == 6
    assert _gauge(otel, "neuromorphic.compile.synapse_memory", "state") == {
        "used": sum(u["synapses"][0] for u in used) // 8,
        "available": sum(u["synapses"][1] for u in used) // 8}


def test_the_simulator_is_not_kept_alive(instrument):
    instrument()
    with nengo_loihi.Simulator(network(), target="sim") as sim:
        ref = weakref.ref(sim)
    del sim
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("allocator,n_chips", [
    (Greedy(), 2), (GreedyInterchip(), 2), (RoundRobin(), 3), (Greedy(cores_per_chip=2), 3)],
    ids=["Greedy", "GreedyInterchip", "RoundRobin", "Greedy-2-cores"])
def test_an_allocation_is_measured_against_its_board(allocating, otel, allocator, n_chips):
    board = allocator(allocating, n_chips=n_chips)
    validate_board(board)  # a step only inside a compile: no span of its own here
    [outer] = otel.spans(COMPILE)
    assert _children(otel, outer) == ["spikeformer.stage allocate"]
    assert len(otel.spans()) == 2
    attrs = otel.spans("spikeformer.stage allocate")[0].attributes
    assert attrs["loihi.allocator"] == type(allocator).__name__
    cores = sum(board.n_cores_per_chip)
    assert (attrs["loihi.chips_used"], attrs["loihi.cores_used"]) == (board.n_chips, cores)
    assert cores == len(allocating.blocks)  # one block per core
    assert attrs["loihi.cores_available"] == n_chips * CORES_PER_CHIP
    bits = [b.utilization()["synapses"] for chip in board.chips for core in chip.cores
            for b in core.blocks]
    assert attrs["loihi.synapse_bytes_used"] == sum(used for used, _ in bits) // 8
    assert attrs["loihi.synapse_bytes_available"] == sum(limit for _, limit in bits) // 8
    assert _gauge(otel, "neuromorphic.compile.core_utilization", "hw.id") == {
        str(i): n / CORES_PER_CHIP for i, n in enumerate(board.n_cores_per_chip)}
    assert _gauge(otel, "neuromorphic.compile.chips", "state") == {
        "used": board.n_chips, "available": n_chips}
    assert _gauge(otel, "neuromorphic.compile.cores", "state") == {
        "used": cores, "available": n_chips * CORES_PER_CHIP}
    assert otel.value("spike_compiler.compilations", model_type="Model") == 1


def test_a_smaller_allocation_leaves_no_stale_chip(allocating, otel):
    RoundRobin()(allocating, n_chips=3)
    assert sorted(_gauge(otel, "neuromorphic.compile.core_utilization", "hw.id")) == ["0", "1", "2"]
    Greedy()(allocating, n_chips=2)
    assert list(_gauge(otel, "neuromorphic.compile.core_utilization", "hw.id")) == ["0"]


def test_a_build_does_not_replace_the_allocations_gauges(allocating, otel):
    """target="loihi" allocates inside the build: both parts must stay reported."""
    RoundRobin()(allocating, n_chips=3)
    with nengo_loihi.Simulator(network(), target="sim"):
        pass
    assert _gauge(otel, "neuromorphic.compile.chips", "state") == {"used": 3, "available": 3}
    assert otel.value("neuromorphic.compile.blocks", target_hardware="loihi") == 6


def test_a_failed_allocation_raises_the_same_exception(allocating, otel):
    with pytest.raises(AssertionError) as raised:
        Greedy(cores_per_chip=2)(allocating, n_chips=1)  # 6 blocks, room for 2
    spans = otel.spans()
    assert len(spans) == 2 and all(s.status.status_code.name == "ERROR" for s in spans)
    assert all(s.attributes["error.type"] == "AssertionError" for s in spans)
    assert raised.type is AssertionError


def test_uninstrument_unpatches_the_copy_imported_by_name(model, instrument, otel):
    from nengo_loihi.hardware import validate

    original = validate.validate_board
    inst = instrument()
    assert hardware_interface.validate_board is validate.validate_board is not original
    inst.uninstrument()
    assert hardware_interface.validate_board is validate.validate_board is original
    hardware_interface.validate_board(Greedy()(model, n_chips=1))
    with nengo_loihi.Simulator(network(), target="sim"):
        pass
    assert otel.spans() == []


IMPORTED_AFTER = """
from opentelemetry_instrumentation_spikeformer import SpikeformerInstrumentor
inst = SpikeformerInstrumentor()
inst.instrument()
from nengo_loihi.hardware import interface, validate  # binds validate_board by name now
wrapped = type(interface.validate_board).__name__
inst.uninstrument()
print(wrapped, type(interface.validate_board).__name__, interface.validate_board is validate.validate_board)
"""


def test_a_name_bound_while_instrumented_is_restored_too():
    out = subprocess.run([sys.executable, "-c", IMPORTED_AFTER], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["SpikeformerWrapper", "function", "True"]


def test_no_torch_needed():
    assert "torch" not in sys.modules


LAUNCHED = """
import warnings
warnings.simplefilter("ignore")
import nengo, nengo_loihi
from nengo_loihi.hardware.allocators import RoundRobin
with nengo.Network(seed=0) as net:
    nengo.Connection(nengo.Ensemble(50, 1), nengo.Ensemble(50, 1))
with nengo_loihi.Simulator(net, target="sim") as sim:
    RoundRobin()(sim.model, n_chips=2)
"""


def test_under_the_launcher_without_torch(tmp_path):
    out = launch(LAUNCHED, tmp_path)
    assert out.count('"name": "spikeformer.compile nengo_loihi"') == 2
    for name in ("split", "discretize", "validate", "emulator build", "allocate"):
        assert f'"name": "spikeformer.stage {name}"' in out, name
    assert '"name": "neuromorphic.compile.core_utilization"' in out
