"""The monitor's forward bookkeeping on its own (``monitor/accumulate.py``):
which sequences are sampled, inferences and sample steps counted by the lead
layer, sequence starts from a neuron's state, and the strided membrane samples
in their ring buffer. Expected values are worked out by hand."""

from __future__ import annotations

import logging
import types

import torch

from opentelemetry_instrumentation_spikeformer.monitor import accumulate  # noqa: E402
from opentelemetry_instrumentation_spikeformer.monitor.accumulate import (  # noqa: E402
    LayerState, Sequencer,
)


def rule(state="v", state_arg=None, state_kwarg=""):
    return types.SimpleNamespace(state=state, state_arg=state_arg, state_kwarg=state_kwarg,
                                 role="neuron",
                                 output_kind=lambda module: f"binary {type(module).__name__}")


class Neuron:
    def __init__(self, v=None):
        self.v = v


class Bare:
    pass


def layer(module, sequencer=None, **kw):
    return LayerState("lif1", module, rule(**kw), "lif1", "LIF", sequencer or Sequencer(1))


def test_constants():
    assert (accumulate.MEMBRANE_SAMPLES, accumulate.MEMBRANE_ROWS, accumulate._SPREAD) \
        == (16, 4, 7919)


def test_one_sequence_in_sample_every_is_monitored():
    seq = Sequencer(3)
    assert (seq.sample_every, seq.sequences, seq.active, seq.lead_per_forward) == (3, 0, True, True)
    active = []
    for _ in range(7):
        seq.begin()
        active.append(seq.active)
    assert active == [True, False, False, True, False, False, True]
    assert seq.sequences == 7
    every = Sequencer(1)
    for _ in range(3):
        every.begin()
        assert every.active is True


def test_the_lead_layer_counts_forwards_steps_and_inferences():
    seq = Sequencer(1)
    assert (seq.inferences, seq.forwards, seq.sample_steps) == (0, 0, 0)
    seq.count_lead(batch=2, steps=5)  # no sequence started: not an inference
    assert (seq.inferences, seq.forwards, seq.sample_steps) == (0, 1, 10)
    seq.begin()
    seq.count_lead(batch=2, steps=5)
    seq.count_lead(batch=2, steps=5)  # the same sequence, one step later
    assert (seq.inferences, seq.forwards, seq.sample_steps) == (2, 3, 30)
    seq.begin()
    seq.count_lead(batch=3, steps=1)
    assert (seq.inferences, seq.forwards, seq.sample_steps) == (5, 4, 33)
    seq.reset()
    assert (seq.inferences, seq.forwards, seq.sample_steps, seq.sequences) == (0, 0, 0, 2)


def test_a_sequence_starts_at_a_reset_or_new_state():
    seq = Sequencer(1)
    neuron = Neuron()
    state = layer(neuron, seq)
    assert (state.name, state.label, state.neuron_type, state.output, state.role) \
        == ("lif1", "lif1", "LIF", "binary Neuron", "neuron")  # the rule read the module
    assert state.module() is neuron and state.is_lead is False and state.last_state is None
    state.pre_hook(neuron, (), {})  # no state yet: a new sequence
    assert seq.sequences == 1
    neuron.v = torch.zeros(2)
    state.hook(neuron, (), None)
    assert state.last_state is neuron.v
    state.pre_hook(neuron, (), {})  # carries on from the state it left
    assert seq.sequences == 1
    neuron.v = torch.zeros(2)  # reset: a new object
    state.pre_hook(neuron, (), {})
    assert seq.sequences == 2
    stateless = layer(neuron, seq, state="")
    stateless.hook(neuron, (), None)
    assert stateless.last_state is None


def test_a_state_passed_as_an_argument_counts():
    seq = Sequencer(1)
    neuron = Neuron(torch.zeros(1))
    state = layer(neuron, seq, state_arg=1, state_kwarg="mem")
    state.hook(neuron, (), None)  # last state: neuron.v
    state.pre_hook(neuron, (torch.ones(1), neuron.v), {})
    assert seq.sequences == 0
    state.pre_hook(neuron, (torch.ones(1),), {"mem": torch.zeros(1)})
    assert seq.sequences == 1


def test_a_failing_pre_hook_is_reported_not_raised(caplog):
    seq = Sequencer(1)
    state = layer(Neuron(), seq)
    state.rule = types.SimpleNamespace(state_arg="not an index", state_kwarg="", state="v")
    with caplog.at_level(logging.WARNING):
        assert state.pre_hook(Neuron(), (1,), {}) is None
    assert [r.getMessage() for r in caplog.records] == [
        "spikeformer instrumentation error in spike monitor pre-hook (the instrumented call "
        "is unaffected)"]
    assert seq.sequences == 0


def test_membrane_samples_are_strided_and_rotate():
    neuron = Neuron(torch.arange(100.0).reshape(10, 10))
    state = layer(neuron)
    assert state.latest_membrane() is None
    state.sample_membrane()
    # stride 100 // 16 = 6; offset 7919 % 6 = 5: 16 values from index 5
    assert state.latest_membrane().tolist() == list(range(5, 100, 6))
    assert state.mem_buf.shape == (4, 16) and state.mem_buf.dtype == torch.float32
    state.sample_membrane()  # offset 2 * 7919 % 6 = 4
    assert state.latest_membrane().tolist() == list(range(4, 100, 6))
    assert (state.mem_rows, state.mem_len) == (2, [16, 16, 0, 0])
    neuron.v.fill_(-1.0)  # samples are copies
    assert state.mem_buf[0, 0].item() == 5.0


def test_few_neurons_are_all_sampled_and_the_ring_wraps():
    neuron = Neuron(torch.tensor([1.0, 2.0, 3.0]))
    state = layer(neuron)
    for k in range(5):
        neuron.v = torch.tensor([1.0, 2.0, 3.0]) + 10 * k
        state.sample_membrane()
    assert state.latest_membrane().tolist() == [41.0, 42.0, 43.0]  # the fifth, in row 0
    assert state.mem_rows == 5 and state.mem_len == [3, 3, 3, 3]
    assert state.mem_buf[1].tolist()[:3] == [11.0, 12.0, 13.0]
    state.reset()
    assert (state.mem_buf, state.mem_rows, state.mem_len) == (None, 0, [0, 0, 0, 0])
    assert state.latest_membrane() is None


def test_seventeen_neurons_sample_sixteen():
    neuron = Neuron(torch.arange(17.0))
    state = layer(neuron)
    state.sample_membrane()  # stride 1, offset 0: the first 16
    assert state.latest_membrane().tolist() == list(map(float, range(16)))
    neuron.v = torch.arange(40.0)
    state.sample_membrane()  # stride 2, offset 2 * 7919 % 2 = 0: 0, 2, .., 30
    assert state.latest_membrane().tolist() == list(map(float, range(0, 32, 2)))
    state.sample_membrane()  # offset 3 * 7919 % 2 = 1: 1, 3, .., 31 (16 of 20)
    assert state.latest_membrane().tolist() == list(map(float, range(1, 33, 2)))


def test_nothing_to_sample():
    for v in (None, 0.0, torch.zeros(0)):  # spikingjelly keeps a float before the first step
        neuron = Neuron(v)  # kept alive: the layer holds a weak reference
        state = layer(neuron)
        state.sample_membrane()
        assert state.mem_buf is None and state.latest_membrane() is None
        assert state.mem_rows == 0
    stateless = layer(neuron, state="")
    neuron.v = torch.ones(3)
    stateless.sample_membrane()
    assert stateless.mem_buf is None
    neuron = Neuron(torch.ones(3))
    gone = layer(neuron)
    del neuron
    gone.sample_membrane()  # the module was freed
    assert gone.mem_buf is None


def test_a_module_without_its_state_attribute():
    module = Bare()  # no ``v`` at all (not even a float yet)
    state = layer(module)
    state.hook(module, (), None)
    assert state.last_state is None
    state.sample_membrane()
    assert state.mem_buf is None and state.latest_membrane() is None


def test_one_neuron_is_sampled():
    neuron = Neuron(torch.tensor([0.25]))  # kept alive: the layer holds a weak reference
    state = layer(neuron)
    state.sample_membrane()
    assert state.latest_membrane().tolist() == [0.25]


def test_the_ring_buffer_is_float32_whatever_the_default_dtype():
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        neuron = Neuron(torch.arange(4.0))
        state = layer(neuron)
        state.sample_membrane()
    finally:
        torch.set_default_dtype(before)
    assert state.mem_buf.dtype == torch.float32
    assert state.latest_membrane().tolist() == [0.0, 1.0, 2.0, 3.0]
