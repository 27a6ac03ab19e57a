"""Synaptic operations of random small conv / pool / linear stacks of sinabs
neurons: the monitor's count (``monitor_model(...).read()``) against a brute
force written here, which walks every output position and kernel offset of the
next weight layer for each neuron that fired.

Convention (sinabs' SNNAnalyzer): pooling between a spiking layer and its
weight layer counts as sum pooling, so a spike reaches every pooled cell whose
window holds it. Generated space: what the monitor counts exactly today: average
pooling without ``ceil_mode``, and before a Linear only pooling whose windows
tile the input; max pooling and adaptive pooling are left out (issue 14)."""

from __future__ import annotations

from dataclasses import dataclass

import sinabs.layers as sl
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from opentelemetry_instrumentation_spikeformer.monitor import monitor_model

B, T = 2, 3


@dataclass(frozen=True)
class Conv:
    out_channels: int
    kernel: int
    stride: int
    padding: int
    dilation: int
    groups: int


@dataclass(frozen=True)
class Pool:
    kernel: int
    stride: int
    padding: int


def out_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@st.composite
def stacks(draw):
    """(channels, size, blocks, linear widths): conv blocks each followed by a
    spiking layer and maybe a pooling, then flatten and linear spiking layers."""
    channels, size = draw(st.integers(1, 3)), draw(st.integers(4, 9))
    blocks, c, s = [], channels, size
    for _ in range(draw(st.integers(0, 2))):
        groups = draw(st.sampled_from([g for g in (1, 2, 3) if c % g == 0]))
        conv = Conv(groups * draw(st.integers(1, 2)), draw(st.integers(1, 3)),
                    draw(st.integers(1, 2)), draw(st.integers(0, 1)), draw(st.integers(1, 2)),
                    groups)
        s2 = out_size(s, conv.kernel, conv.stride, conv.padding, conv.dilation)
        if s2 < 1:
            break
        pool = None
        if draw(st.booleans()):
            k = draw(st.integers(1, 3))
            pool = Pool(k, draw(st.integers(1, k)), draw(st.integers(0, k // 2)))
            if out_size(s2, pool.kernel, pool.stride, pool.padding) < 1:
                pool = None
        blocks.append((conv, pool, s2))
        c, s = conv.out_channels, s2
        if pool is not None:
            s = out_size(s, pool.kernel, pool.stride, pool.padding)
    if blocks and not tiles(blocks[-1][1], blocks[-1][2]):
        blocks[-1] = (blocks[-1][0], None, blocks[-1][2])  # see tiles()
    widths = draw(st.lists(st.integers(1, 6), min_size=1, max_size=2))
    return channels, size, [(conv, pool) for conv, pool, _ in blocks], widths


def tiles(pool: Pool | None, size: int) -> bool:
    """Pooling right before a Linear: the monitor charges every spike the Linear's
    out_features, exact only when each neuron lies in exactly one window (issue 14)."""
    return pool is None or (pool.stride == pool.kernel and pool.padding == 0
                            and size % pool.kernel == 0)


def build(channels, size, blocks, widths):
    torch.manual_seed(0)
    parts, c, s = [], channels, size
    for conv, pool in blocks:
        parts.append(torch.nn.Conv2d(c, conv.out_channels, conv.kernel, conv.stride,
                                     conv.padding, conv.dilation, conv.groups))
        parts.append(sl.IAFSqueeze(batch_size=B))
        c, s = conv.out_channels, out_size(s, conv.kernel, conv.stride, conv.padding,
                                           conv.dilation)
        if pool is not None:
            parts.append(torch.nn.AvgPool2d(pool.kernel, pool.stride, pool.padding))
            s = out_size(s, pool.kernel, pool.stride, pool.padding)
    parts.append(torch.nn.Flatten())
    features = c * s * s
    for width in widths:
        parts += [torch.nn.Linear(features, width), sl.IAFSqueeze(batch_size=B)]
        features = width
    with torch.no_grad():  # positive weights: activity reaches the deeper layers
        for module in parts:
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                module.weight.uniform_(0.5, 1.0)
                module.bias.zero_()
    return torch.nn.Sequential(*parts)


def conv_fanout(conv: Conv, in_channels: int, size: int) -> list[list[list[int]]]:
    """Synapses each input element of ``conv`` reaches: count of (output position,
    kernel offset) pairs that read it, times the output channels of its group."""
    out = out_size(size, conv.kernel, conv.stride, conv.padding, conv.dilation)
    per_group = conv.out_channels // conv.groups
    hits = [[0] * size for _ in range(size)]
    for oy in range(out):
        for ox in range(out):
            for ky in range(conv.kernel):
                for kx in range(conv.kernel):
                    y = oy * conv.stride - conv.padding + ky * conv.dilation
                    x = ox * conv.stride - conv.padding + kx * conv.dilation
                    if 0 <= y < size and 0 <= x < size:
                        hits[y][x] += 1
    return [[[hits[y][x] * per_group for x in range(size)] for y in range(size)]
            for _ in range(in_channels)]


def through_pool(fan, pool: Pool, channels: int, size: int):
    """Fan-out before a sum pooling: the sum over every window holding the element."""
    pooled = out_size(size, pool.kernel, pool.stride, pool.padding)
    before = [[[0] * size for _ in range(size)] for _ in range(channels)]
    for c in range(channels):
        for py in range(pooled):
            for px in range(pooled):
                for ky in range(pool.kernel):
                    for kx in range(pool.kernel):
                        y = py * pool.stride - pool.padding + ky
                        x = px * pool.stride - pool.padding + kx
                        if 0 <= y < size and 0 <= x < size:
                            before[c][y][x] += fan[c][py][px]
    return before


def brute_force(channels, size, blocks, widths, spikes):
    """Expected synops per spiking layer name, from the spike counts per neuron."""
    expected, index, c, s = {}, 0, channels, size
    names = []
    for conv, pool in blocks:
        s = out_size(s, conv.kernel, conv.stride, conv.padding, conv.dilation)
        names.append((str(index + 1), conv.out_channels, s, pool))
        index += 3 if pool is not None else 2
        c = conv.out_channels
        if pool is not None:
            s = out_size(s, pool.kernel, pool.stride, pool.padding)
    index += 1  # Flatten
    linear_names = [str(index + 1 + 2 * i) for i in range(len(widths))]
    for i, (name, ch, sz, pool) in enumerate(names):
        counts = spikes[name].reshape(ch, sz, sz).tolist()
        if i + 1 < len(blocks):
            nxt = blocks[i + 1][0]
            pooled = sz if pool is None else out_size(sz, pool.kernel, pool.stride, pool.padding)
            fan = conv_fanout(nxt, ch, pooled)
        else:
            pooled = sz if pool is None else out_size(sz, pool.kernel, pool.stride, pool.padding)
            fan = [[[widths[0]] * pooled for _ in range(pooled)] for _ in range(ch)]
        if pool is not None:
            fan = through_pool(fan, pool, ch, sz)
        expected[name] = sum(counts[k][y][x] * fan[k][y][x]
                             for k in range(ch) for y in range(sz) for x in range(sz))
    for i, name in enumerate(linear_names):
        following = widths[i + 1] if i + 1 < len(widths) else 0
        expected[name] = float(spikes[name].sum()) * following
    return expected


@settings(max_examples=30)
@given(stack=stacks(), seed=st.integers(0, 2**16))
def test_synops_equal_a_brute_force_count(stack, seed):
    channels, size, blocks, widths = stack
    net = build(*stack)
    spikes = {}

    def record(name):
        def hook(_module, _args, output):
            total = output.detach().sum(0).double()
            spikes[name] = spikes.get(name, 0) + total
        return hook

    for name, module in net.named_modules():
        if isinstance(module, sl.IAFSqueeze):
            module.register_forward_hook(record(name))
    monitor = monitor_model(net, "property")
    try:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for _ in range(2):
                net(torch.rand(B * T, channels, size, size, generator=gen) * 3)
        rows = {row["layer"]: row for row in monitor.read()["layers"]}
    finally:
        monitor.detach()
    expected = brute_force(channels, size, blocks, widths, spikes)
    assert set(rows) == set(expected)
    for name, synops in expected.items():
        assert rows[name]["spikes"] == float(spikes[name].sum())
        assert abs(rows[name]["synops"] - synops) <= 1e-9 * max(synops, 1.0), (name, rows[name])
    last = max(expected, key=int)
    assert {name: row["fanout"] for name, row in rows.items()} == {
        name: "none" if name == last else "exact" for name in expected}
    first = min(expected, key=int)
    assert rows[first]["spikes"] > 0  # the stack was active: the comparison means something
