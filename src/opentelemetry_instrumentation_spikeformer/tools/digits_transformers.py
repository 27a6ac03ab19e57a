"""Transformer workloads on the digits, upsampled to 16 x 16: a tiny ViT that
spikingjelly's STA and TD-equivalent recipes convert, and spikingjelly's own
Spikformer and Spike-driven Transformer, trained directly as SNNs.

Imports torch and spikingjelly lazily: importing this module is cheap.
"""

from __future__ import annotations

import functools
from typing import Any

from . import digits

IMAGE_SIZE = 16
TRAIN_TIMESTEPS = 4  # the directly trained SNNs learn at this T; the sweep evaluates others
_DIM, _HEADS = 32, 2


@functools.cache
def _vit_class() -> type:
    import torch.nn as nn

    class DigitsViT(nn.Module):
        """4 x 4 patches, a depthwise-conv position encoding (CPVT's PEG; a learned
        position table would be added at every timestep by spikingjelly 2.0.0's
        STA and TD recipes), one pre-norm block (``nn.MultiheadAttention``, GELU
        MLP), mean over tokens, linear head."""

        def __init__(self, dim: int = _DIM, heads: int = _HEADS) -> None:
            super().__init__()
            self.patch = nn.Conv2d(1, dim, 4, 4)
            self.pos = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
            self.n1 = nn.LayerNorm(dim)
            self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
            self.n2 = nn.LayerNorm(dim)
            self.fc1 = nn.Linear(dim, 2 * dim)
            self.act = nn.GELU()
            self.fc2 = nn.Linear(2 * dim, dim)
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, digits.CLASSES)

        def forward(self, x):
            x = self.patch(x)
            x = (x + self.pos(x)).flatten(-2).transpose(-1, -2)  # negative dims: T-agnostic
            y = self.n1(x)
            a, _ = self.attn(y, y, y, need_weights=False)  # the form the STA recipe accepts
            x = x + a
            x = x + self.fc2(self.act(self.fc1(self.n2(x))))
            return self.head(self.norm(x).mean(-2))

    return DigitsViT


@functools.cache
def _classifier_class() -> type:
    import torch.nn as nn

    class SpikingClassifier(nn.Module):
        """A multi-step spikingjelly model as a classifier: fresh neuron state for
        each call and none left after it (copies and checkpoints hold no
        training graph), class scores averaged over T (Spikformer gives them per step)."""

        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net

        @property
        def timesteps(self) -> int:
            return self.net.T

        @timesteps.setter
        def timesteps(self, value: int) -> None:
            self.net.T = value

        def forward(self, x):
            from spikingjelly.activation_based import functional

            functional.reset_net(self.net)
            try:
                out = self.net(x)
            finally:
                functional.reset_net(self.net)
            return out.mean(0) if out.ndim == 3 else out

    return SpikingClassifier


def build_vit(seed: int = 0):
    import torch

    torch.manual_seed(seed)
    return _vit_class()()


def build_spikformer(seed: int = 0):
    import torch
    from spikingjelly.activation_based.model.spikformer import Spikformer

    torch.manual_seed(seed)
    return _classifier_class()(Spikformer(
        T=TRAIN_TIMESTEPS, in_channels=1, img_size_h=IMAGE_SIZE, img_size_w=IMAGE_SIZE,
        patch_size=4, num_classes=digits.CLASSES, embed_dims=_DIM, num_heads=_HEADS,
        mlp_ratio=4.0, depths=1))


def build_sdt(seed: int = 0):
    import torch
    from spikingjelly.activation_based.model.spike_driven_transformer import (
        SpikeDrivenTransformer,
    )

    torch.manual_seed(seed)
    return _classifier_class()(SpikeDrivenTransformer(
        T=TRAIN_TIMESTEPS, in_channels=1, num_classes=digits.CLASSES, embed_dims=_DIM,
        num_heads=_HEADS, depths=1, mlp_ratio=4.0, pooling_stat="0011"))


def convert_sta(ann: Any, data: digits.DigitsData, timesteps: int):
    """STA (spiking encoders), thresholds calibrated for ``timesteps``."""
    from spikingjelly.activation_based import ann2snn

    recipe = ann2snn.STATransformerRecipe(dataloader=digits.calibration_loader(data),
                                          time_steps=timesteps, mode="spiking_encoder")
    return ann2snn.Converter(recipe).convert(ann)


def convert_td(ann: Any, _data: digits.DigitsData, timesteps: int):
    """TD-equivalent operators: exact for every T (no calibration)."""
    from spikingjelly.activation_based import ann2snn

    return ann2snn.Converter(ann2snn.TransformerTDEquivalentRecipe(time_steps=timesteps)
                             ).convert(ann)


def run_converted(snn: Any, x: Any, timesteps: int):
    """Outputs of an STA / TD network summed over ``timesteps`` for the image at
    t = 0 and zeros after (the recipes' convention: the sum equals the ANN's)."""
    import torch
    from spikingjelly.activation_based import functional

    seq = torch.zeros((timesteps, *x.shape), dtype=x.dtype, device=x.device)
    seq[0] = x
    functional.reset_net(snn)
    with torch.no_grad():
        out = snn(seq).sum(0)
    functional.reset_net(snn)
    return out


def run_direct(model: Any, x: Any, timesteps: int):
    """A directly trained SNN at ``timesteps`` (the image repeated each step)."""
    import torch

    model.timesteps = timesteps
    with torch.no_grad():
        return model(x)
