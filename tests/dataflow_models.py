"""Models for the synop tests: spikingjelly's three spiking transformers (tiny
configs) and small hand-made networks that each isolate one dataflow case.
torch and spikingjelly are imported by the callers first."""

from __future__ import annotations

import warnings

T, B = 4, 2


def settle(model, x):
    """One train-mode forward with cumulative BatchNorm statistics, then eval:
    at random init with the default momentum the tiny transformers are silent
    in eval mode."""
    import torch
    from spikingjelly.activation_based import functional

    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(x)
    functional.reset_net(model)
    return model.eval()


def image(seed=0, batch=B):
    import torch

    gen = torch.Generator().manual_seed(100 + seed)
    return torch.rand(batch, 3, 32, 32, generator=gen) * 2


def spikformer(seed=0):
    import torch
    from spikingjelly.activation_based.model.spikformer import Spikformer

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Spikformer(T=T, img_size_h=32, img_size_w=32, patch_size=4, num_classes=10,
                           embed_dims=32, num_heads=2, mlp_ratio=4., depths=1)
    return settle(model, image(seed))


def sdt(seed=0):
    import torch
    from spikingjelly.activation_based.model.spike_driven_transformer import (
        SpikeDrivenTransformer,
    )

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SpikeDrivenTransformer(T=T, num_classes=10, embed_dims=32, num_heads=2, depths=1,
                                       mlp_ratio=4., pooling_stat="0011")
    return settle(model, image(seed))


def qkformer(seed=0):
    import torch
    from spikingjelly.activation_based.model.qkformer import QKFormer

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = QKFormer(T=T, num_classes=10, embed_dims=32, num_heads=(1, 2, 2),
                         depths=(1, 1, 1), mlp_ratio=4.)
    return settle(model, image(seed))


TRANSFORMERS = {"spikformer": spikformer, "sdt": sdt, "qkformer": qkformer}


def small_input(shape, seed=0, scale=2.0):
    import torch

    gen = torch.Generator().manual_seed(200 + seed)
    return torch.rand(T, B, *shape, generator=gen) * scale


def _lif(threshold=0.5):
    from spikingjelly.activation_based import neuron

    return neuron.LIFNode(tau=2.0, v_threshold=threshold, step_mode="m")


def _seq(*mods):
    """A module applied to [T*B, ...] inside a [T, B, ...] model."""
    import torch.nn as nn

    class Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(*mods)

        def forward(self, x):
            y = self.body(x.flatten(0, 1))
            return y.reshape(x.shape[0], x.shape[1], *y.shape[1:])

    return Seq()


def residual_cnn():
    """conv-LIF, a residual block whose shortcut adds spike tensors (SEW ADD:
    counts {0, 1, 2}), a grouped conv, a strided conv and an avg-pooled head."""
    import torch.nn as nn

    class ResidualCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = _seq(nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8))
            self.lif0 = _lif()
            self.c1 = _seq(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
            self.lif1 = _lif()
            self.c2 = _seq(nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.BatchNorm2d(8))
            self.lif2 = _lif()
            self.down = _seq(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16))
            self.lif3 = _lif()
            self.pool = _seq(nn.AvgPool2d(2))
            self.fc = nn.Linear(16 * 2 * 2, 10)

        def forward(self, x):
            s0 = self.lif0(self.stem(x))
            s1 = self.lif1(self.c1(s0))
            s2 = self.lif2(self.c2(s1)) + s0
            s3 = self.lif3(self.down(s2))
            return self.fc(self.pool(s3).flatten(2))

    return ResidualCNN()


def qkv_block(c=8, heads=2):
    """One LIF feeding q, k and v convs and (through a concat) the projection:
    fan-out; SSA-style attention on spikes (Q Kt, then attn V)."""
    import torch
    import torch.nn as nn

    class QKVBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = _seq(nn.Conv1d(4, c, 1))
            self.lif_in = _lif()
            self.q = _seq(nn.Conv1d(c, c, 1), nn.BatchNorm1d(c))
            self.k = _seq(nn.Conv1d(c, c, 1), nn.BatchNorm1d(c))
            self.v = _seq(nn.Conv1d(c, c, 1), nn.BatchNorm1d(c))
            self.lq, self.lk, self.lv = _lif(), _lif(), _lif()
            self.lattn = _lif()
            self.proj = _seq(nn.Conv1d(2 * c, c, 1))

        def forward(self, x):  # [T, B, 4, L]
            s = self.lif_in(self.inp(x))
            q, k, v = self.lq(self.q(s)), self.lk(self.k(s)), self.lv(self.v(s))
            t, b, ch, length = q.shape

            def heads_of(z):
                return z.reshape(t, b, heads, ch // heads, length).transpose(-1, -2)

            attn = heads_of(q) @ heads_of(k).transpose(-1, -2)
            y = (attn @ heads_of(v)) * 0.25
            y = self.lattn(y).transpose(-1, -2).reshape(t, b, ch, length)
            return self.proj(torch.cat([y, s], dim=2))

    return QKVBlock()


def overlap_maxpool():
    import torch.nn as nn

    class OverlapMaxPool(nn.Module):
        def __init__(self):
            super().__init__()
            self.c0 = _seq(nn.Conv2d(2, 6, 3, padding=1))
            self.l0 = _lif()
            self.mp = _seq(nn.MaxPool2d(3, stride=2, padding=1))
            self.c1 = _seq(nn.Conv2d(6, 6, 3, padding=1))
            self.l1 = _lif()

        def forward(self, x):
            return self.l1(self.c1(self.mp(self.l0(self.c0(x)))))

    return OverlapMaxPool()


def adaptive_head(out_hw=(1, 1)):
    import torch.nn as nn

    class AdaptiveHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.c0 = _seq(nn.Conv2d(2, 6, 3, padding=1))
            self.l0 = _lif()
            self.gap = _seq(nn.AdaptiveAvgPool2d(out_hw))
            self.fc = nn.Linear(6 * out_hw[0] * out_hw[1], 5)

        def forward(self, x):
            return self.fc(self.gap(self.l0(self.c0(x))).flatten(2))

    return AdaptiveHead()


def reset(model) -> None:
    from spikingjelly.activation_based import functional

    functional.reset_net(model)


def rare_paths(c=4, heads=2):
    """Paths the three transformers do not take: a functional max pool (keyword
    arguments) of a concatenation of spikes and a copy of spikes, read by a
    padded conv on its own output (a derived source recomputed from the
    forward's values, per neuron); a product of two spike sums (their events are
    their non-zeros) and one whose operands' batch rows are shaped differently
    ([T, B, h] on one side, [T*B, h] on the other)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class RarePaths(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = _seq(nn.Conv2d(2, c, 3, padding=1))
            self.la, self.lb = _lif(), _lif()
            self.cb = _seq(nn.Conv2d(c, c, 1))
            self.c1 = nn.Conv2d(2 * c, c, 3, padding=1)
            self.lq, self.lk = _lif(0.3), _lif(0.3)
            self.q, self.k = _seq(nn.Conv2d(c, c, 1)), _seq(nn.Conv2d(c, c, 1))

        def forward(self, x):  # [T, B, 2, 8, 8]
            a = self.la(self.inp(x))
            b = self.lb(self.cb(a))
            t, n = a.shape[:2]
            both = torch.cat([a, b.clone()], dim=2).flatten(0, 1)
            pooled = F.max_pool2d(both, kernel_size=3, stride=2, padding=1)
            y = self.c1(pooled)
            y = y.reshape(t, n, *y.shape[1:])
            q, k = self.lq(self.q(y)), self.lk(self.k(y))  # [T, B, c, 4, 4]
            d = c // heads
            sums = (q + k).reshape(t, n, heads, d, 16)  # {0, 1, 2}
            p1 = sums.transpose(-1, -2) @ (k + k * q).reshape(t, n, heads, d, 16)
            rows = q.reshape(t, n, heads, d, 16).transpose(-1, -2).flatten(0, 1)
            p2 = rows @ k.flatten(0, 1).reshape(t * n, heads, d, 16)
            return p1.mean() + p2.mean()

    return _excitatory(RarePaths())


def two_maxpools():
    """Max pools returned by modules (captured outputs): two pool modules, one
    of them called twice on spikes and once on the input (not a capture), and
    a spike AND of a captured output with spikes, read by a padded conv (its
    counts per neuron, recomputed from the forward's values)."""
    import torch.nn as nn

    class TwoMaxPools(nn.Module):
        def __init__(self):
            super().__init__()
            self.c0 = _seq(nn.Conv2d(2, 4, 3, padding=1))
            self.l0 = _lif()
            self.mp = _seq(nn.MaxPool2d(2))
            self.c1 = _seq(nn.Conv2d(4, 4, 3, padding=1))
            self.l1 = _lif()
            self.mp2 = _seq(nn.MaxPool2d(3, stride=1, padding=1))
            self.c2 = _seq(nn.Conv2d(4, 4, 1))
            self.l2 = _lif()
            self.c3 = _seq(nn.Conv2d(4, 4, 1))
            self.c4 = _seq(nn.Conv2d(4, 4, 3, padding=1))  # the AND per neuron (padding)

        def forward(self, x):  # [T, B, 2, 8, 8]
            s1 = self.l1(self.c1(self.mp(self.l0(self.c0(x)))))  # [T, B, 4, 4, 4]
            p2 = self.mp2(s1)
            s2 = self.l2(self.c2(p2))
            return self.c3(self.mp(s2)), self.c4(p2 * s2), self.mp(x)

    return _excitatory(TwoMaxPools())


def _excitatory(model, gain=0.5):
    """Non-negative conv weights: spikes reach the deeper layers of an
    untrained model without BatchNorm."""
    import torch

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.abs_().mul_(gain)
    return model


def shared_lif():
    """One LIF module called twice in a forward (its state carries over)."""
    import torch.nn as nn

    class SharedLIF(nn.Module):
        def __init__(self):
            super().__init__()
            self.c0 = _seq(nn.Conv2d(2, 4, 3, padding=1))
            self.lif = _lif()
            self.c1 = _seq(nn.Conv2d(4, 4, 1))
            self.c2 = _seq(nn.Conv2d(4, 4, 1))

        def forward(self, x):  # [T, B, 2, 8, 8]
            s1 = self.lif(self.c0(x))
            s2 = self.lif(self.c1(s1))
            return self.c2(s2)

    return _excitatory(SharedLIF())


def gated():
    """A branch that can be switched off (``skip``) with the same input shapes:
    a spike AND and a product then miss an operand."""
    import torch
    import torch.nn as nn

    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.ca, self.cb = _seq(nn.Conv2d(2, 4, 1)), _seq(nn.Conv2d(2, 4, 1))
            self.la, self.lb = _lif(), _lif()
            self.c = _seq(nn.Conv2d(4, 4, 1))
            self.skip = False

        def forward(self, x):  # [T, B, 2, 4, 4]
            a = self.la(self.ca(x)) if not self.skip else torch.zeros(
                *x.shape[:2], 4, *x.shape[3:])
            b = self.lb(self.cb(x))
            t, n = b.shape[:2]
            p = b.reshape(t, n, 4, 16) @ a.reshape(t, n, 4, 16).transpose(-1, -2)
            return self.c(a * b), p.mean()

    return _excitatory(Gated())


def repeated_steps():
    """A forward whose time steps come from an ``int`` argument: the same input
    signature, other shapes inside."""
    import torch.nn as nn

    class Repeated(nn.Module):
        def __init__(self):
            super().__init__()
            self.c0 = _seq(nn.Conv2d(2, 4, 3, padding=1))
            self.l0 = _lif()
            self.c1 = _seq(nn.Conv2d(4, 4, 1))

        def forward(self, x, repeat=1):  # [T, B, 2, 8, 8]
            return self.c1(self.l0(self.c0(x.repeat(repeat, 1, 1, 1, 1))))

    return _excitatory(Repeated())


def single_step_product():
    """Single-step LIFs (one call per time step; their spikes keep the layout of
    their input) and a product of views of them."""
    import torch.nn as nn
    from spikingjelly.activation_based import neuron

    class SingleStep(nn.Module):
        def __init__(self):
            super().__init__()
            self.c0 = nn.Conv2d(2, 4, 3, padding=1)
            self.l0, self.l1 = neuron.LIFNode(v_threshold=0.3), neuron.LIFNode(v_threshold=0.3)

        def forward(self, x):  # [B, 2, 8, 8]
            y = self.c0(x)
            s, r = self.l0(y), self.l1(y * 0.7)
            return (s.transpose(-1, -2) @ r).mean()

    return _excitatory(SingleStep())


def graded_steps():
    """Single-step neurons called once per time step inside the forward (a
    source module with T calls): LIAF's graded act(v) and a ternary IF's
    signed spikes, each read by a conv."""
    import torch
    import torch.nn as nn
    from spikingjelly.activation_based import neuron

    class GradedSteps(nn.Module):
        def __init__(self):
            super().__init__()
            self.c0 = nn.Conv2d(2, 4, 3, padding=1)
            self.liaf = neuron.LIAFNode(act=torch.relu, threshold_related=False)
            self.c1 = nn.Conv2d(4, 4, 3, padding=1)
            self.tern = neuron.TernaryIFNode(v_threshold=0.5)
            self.c2 = nn.Conv2d(4, 4, 1)

        def forward(self, x):  # [T, B, 2, 8, 8]
            return torch.stack([self.c2(self.tern(self.c1(self.liaf(self.c0(x[t])))))
                                for t in range(x.shape[0])])

    return GradedSteps()


def spike_input_cnn():
    """IF neurons (not leaky) from the input on: the first conv and the linear
    head are driven by spikes."""
    import torch.nn as nn
    from spikingjelly.activation_based import neuron

    class SpikeInputCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = neuron.IFNode(step_mode="m")
            self.c0 = _seq(nn.Conv2d(2, 4, 3, padding=1))
            self.if0 = neuron.IFNode(step_mode="m")
            self.fc = nn.Linear(4 * 8 * 8, 5)

        def forward(self, x):  # [T, B, 2, 8, 8]
            return self.fc(self.if0(self.c0(self.enc(x))).flatten(2))

    return _excitatory(SpikeInputCNN())


def multi_step_layer_cnn():
    """spikingjelly's own multi-step layers (``layer.Conv2d`` / ``layer.Linear``
    with ``step_mode="m"``) on spikes [T, B, ...]: the module sees T steps."""
    import torch.nn as nn
    from spikingjelly.activation_based import layer, neuron

    class MultiStepLayerCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = neuron.IFNode(step_mode="m")
            self.c0 = layer.Conv2d(2, 4, 3, padding=1, step_mode="m")
            self.if0 = neuron.IFNode(step_mode="m")
            self.fc = layer.Linear(4 * 8 * 8, 5, step_mode="m")

        def forward(self, x):  # [T, B, 2, 8, 8]
            return self.fc(self.if0(self.c0(self.enc(x))).flatten(2))

    return _excitatory(MultiStepLayerCNN())


def single_step_cnn():
    """Single-step LIFs: one forward is one time step."""
    import torch.nn as nn
    from spikingjelly.activation_based import neuron

    class SingleStepCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.c0, self.l0 = nn.Conv2d(2, 4, 3, padding=1), neuron.LIFNode()
            self.c1, self.l1 = nn.Conv2d(4, 4, 3, padding=1), neuron.LIFNode()

        def forward(self, x):  # [B, 2, 8, 8]
            return self.l1(self.c1(self.l0(self.c0(x))))

    return _excitatory(SingleStepCNN())


def inplace_spikes(start=1):
    """Multi-step LIF spikes that the model changes in place after reading them
    (``mul_``, as an in-place dropout would), from its ``start``-th forward on:
    the layer's events are those it returned."""
    import torch.nn as nn
    from spikingjelly.activation_based import layer, neuron

    class InPlace(nn.Module):
        def __init__(self):
            super().__init__()
            self.c0 = layer.Conv2d(2, 4, 3, padding=1, step_mode="m")
            self.l0 = neuron.LIFNode(v_threshold=0.3, step_mode="m")
            self.c1 = layer.Conv2d(4, 4, 3, padding=1, step_mode="m")
            self.l1 = neuron.LIFNode(v_threshold=0.3, step_mode="m")
            self.calls = 0

        def forward(self, x):  # [T, B, 2, 8, 8]
            s = self.l0(self.c0(x))
            y = self.c1(s)
            self.calls += 1
            if self.calls >= start:
                s.mul_(0.5)  # after c1 read it
            return self.l1(y)

    return _excitatory(InPlace())


def copy_segment():
    """Single-step spikes whose every dim matters to some consumer: a padded conv
    (rows and columns at the border reach fewer synapses) and a linear head on
    the first channel of the first sample only (batch and channel): per-neuron
    counts with nothing to sum over."""
    import torch.nn as nn
    from spikingjelly.activation_based import neuron

    class CopySegment(nn.Module):
        def __init__(self):
            super().__init__()
            self.c0, self.l0 = nn.Conv2d(2, 4, 3, padding=1), neuron.LIFNode(v_threshold=0.3)
            self.c1 = nn.Conv2d(4, 4, 3, padding=1)
            self.fc = nn.Linear(64, 3)

        def forward(self, x):  # [B, 2, 8, 8]
            s = self.l0(self.c0(x))
            return self.c1(s), self.fc(s[:1, :1].flatten(1))

    return _excitatory(CopySegment())


def count_sources():
    """Multi-level spikes (ILIF: 0..4 per step): one layer read by a padded conv
    (per neuron), one by a 1x1 conv (one count per forward)."""
    import torch.nn as nn
    from spikingjelly.activation_based.neuron import ilif

    class CountSources(nn.Module):
        def __init__(self):
            super().__init__()
            self.c0 = nn.Conv2d(2, 4, 3, padding=1)
            self.n0 = ilif.ILIFNode(v_threshold=0.3)
            self.c1 = nn.Conv2d(4, 4, 3, padding=1)
            self.n1 = ilif.ILIFNode(v_threshold=0.3)
            self.c2 = nn.Conv2d(4, 4, 1)

        def forward(self, x):  # [B, 2, 8, 8]
            return self.c2(self.n1(self.c1(self.n0(self.c0(x)))))

    return _excitatory(CountSources())


def looped_steps():
    """A single-step LIF called once per step of a loop whose length is an
    ``int`` argument: the same input signature, another number of calls."""
    import torch
    import torch.nn as nn
    from spikingjelly.activation_based import neuron

    class Looped(nn.Module):
        def __init__(self):
            super().__init__()
            self.c0 = nn.Conv2d(2, 4, 3, padding=1)
            self.l0 = neuron.LIFNode(v_threshold=0.3)
            self.c1 = nn.Conv2d(4, 4, 1)

        def forward(self, x, steps=2):  # [B, 2, 8, 8]
            y = self.c0(x)
            return torch.stack([self.c1(self.l0(y)) for _ in range(steps)])

    return _excitatory(Looped())


def readout():
    """Returns the time-averaged spikes of its last layer (a common readout) and a
    linear head on them: the average is a weight op's input and an output of the
    model, so its adds are counted too."""
    import torch.nn as nn

    class ReadOut(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = repeated_steps()
            self.l1 = _lif()
            self.fc = nn.Linear(4 * 8 * 8, 3)

        def forward(self, x):  # [T, B, 2, 8, 8]
            rates = self.l1(self.inner(x)).mean(0)
            return self.fc(rates.flatten(1)), rates

    return _excitatory(ReadOut())


def dense_residual():
    """Spikes added into a real tensor (a dense residual stream, ``conv(s) + s``):
    one accumulate per event, before the next layer."""
    import torch.nn as nn

    class DenseResidual(nn.Module):
        def __init__(self):
            super().__init__()
            self.c0 = _seq(nn.Conv2d(2, 4, 3, padding=1))
            self.l0 = _lif()
            self.c1 = _seq(nn.Conv2d(4, 4, 1))
            self.l1 = _lif()

        def forward(self, x):  # [T, B, 2, 8, 8]
            s = self.l0(self.c0(x))
            return self.l1(self.c1(s) + s)

    return _excitatory(DenseResidual())
