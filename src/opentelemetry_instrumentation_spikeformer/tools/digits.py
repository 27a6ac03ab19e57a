"""A real, download-free workload: scikit-learn's bundled 8x8 digits, a small
seeded CNN trained in seconds on CPU, and spiking evaluation of its sinabs and
spikingjelly conversions. Used by the demo and the benchmark runner.

Imports torch and scikit-learn lazily: importing this module is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INPUT_SHAPE = (1, 8, 8)
CLASSES = 10


@dataclass
class DigitsData:
    x_train: Any
    y_train: Any
    x_test: Any
    y_test: Any


def quiet_libraries() -> None:
    """Progress bars and notices from the libraries would garble a command's output."""
    import logging
    import os

    os.environ.setdefault("TQDM_DISABLE", "1")  # spikingjelly's calibration bar
    logging.getLogger("torch._library.triton").setLevel(logging.ERROR)


def load_digits(seed: int = 0, test_fraction: float = 0.25, size: int = 8) -> DigitsData:
    """The 1797 digits from sklearn (shipped inside the package), scaled to [0, 1];
    ``size`` > 8 upsamples them bilinearly to ``size`` x ``size`` (for patch models)."""
    import torch
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    x = torch.tensor(bunch.images / 16.0, dtype=torch.float32).unsqueeze(1)
    if size != x.shape[-1]:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                            align_corners=False)
    y = torch.tensor(bunch.target, dtype=torch.long)
    idx_train, idx_test = train_test_split(
        list(range(len(y))), test_size=test_fraction, random_state=seed, stratify=bunch.target)
    return DigitsData(x[idx_train], y[idx_train], x[idx_test], y[idx_test])


def build_cnn(seed: int = 0):
    """Conv-ReLU-Conv(stride 2)-ReLU-Linear: converts with sinabs and spikingjelly
    and exports to NIR (no pooling layer, which sinabs.to_nir lacks)."""
    import torch
    import torch.nn as nn

    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * 4 * 4, CLASSES, bias=False),
    )


def build_mlp(seed: int = 0):
    """Flatten-Linear-ReLU-Linear-ReLU-Linear: a second, convolution-free shape."""
    import torch
    import torch.nn as nn

    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 128, bias=False), nn.ReLU(),
        nn.Linear(128, 64, bias=False), nn.ReLU(), nn.Linear(64, CLASSES, bias=False),
    )


def train(model, data: DigitsData, epochs: int = 15, batch_size: int = 64, seed: int = 0,
          lr: float = 3e-3):
    """Plain Adam training; deterministic for a given seed on CPU."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    n = len(data.y_train)
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            opt.zero_grad()
            loss_fn(model(data.x_train[idx]), data.y_train[idx]).backward()
            opt.step()
    model.eval()
    return model


def accuracy(logits, labels) -> float:
    return float((logits.argmax(dim=1) == labels).float().mean())


def ann_accuracy(model, data: DigitsData) -> float:
    import torch

    with torch.no_grad():
        return accuracy(model(data.x_test), data.y_test)


def calibration_loader(data: DigitsData, batches: int = 4, batch_size: int = 64):
    """A few training batches for threshold calibration (spikingjelly)."""
    return [(data.x_train[i:i + batch_size], data.y_train[i:i + batch_size])
            for i in range(0, batches * batch_size, batch_size)]


def run_sinabs(network, x, timesteps: int):
    """Spike counts of a sinabs-converted network (IAFSqueeze layers take (B*T, ...))
    for a constant-current input repeated over ``timesteps``."""
    import sinabs
    import torch

    snn = getattr(network, "spiking_model", network)
    sinabs.reset_states(snn)
    batch = x.shape[0]
    for module in snn.modules():  # Squeeze layers unpack (B*T, ...) by T here
        if hasattr(module, "batch_size") and hasattr(module, "num_timesteps"):
            module.batch_size, module.num_timesteps = -1, timesteps
    with torch.no_grad():
        out = snn(x.repeat_interleave(timesteps, dim=0))
    return out.reshape(batch, timesteps, -1).sum(dim=1)


def run_spikingjelly(snn, x, timesteps: int):
    """Summed outputs of a spikingjelly-converted (single-step) network."""
    import torch
    from spikingjelly.activation_based import functional

    functional.reset_net(snn)
    with torch.no_grad():
        total = sum(snn(x) for _ in range(timesteps))
    functional.reset_net(snn)
    return total


def convert_sinabs(model, timesteps: int):
    import sinabs

    return sinabs.from_model(model, input_shape=INPUT_SHAPE, num_timesteps=timesteps)


def convert_spikingjelly(model, data: DigitsData):
    from spikingjelly.activation_based import ann2snn

    recipe = ann2snn.RateCodingRecipe(dataloader=calibration_loader(data), mode="99.9%")
    return ann2snn.Converter(recipe).convert(model)
