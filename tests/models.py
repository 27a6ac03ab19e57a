"""Small real models for the tests (torch imported lazily by the callers)."""

from __future__ import annotations


def _seeded(build, seed: int):
    """``build()`` with torch's generator seeded, leaving the global state as it was
    (the weights must not depend on which tests ran before)."""
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build()


def tiny_cnn(seed: int = 0):
    """Conv -> ReLU -> AvgPool -> Conv -> ReLU -> Flatten -> Linear -> ReLU on 2x14x14."""
    import torch.nn as nn

    return _seeded(lambda: nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(),
        nn.Linear(4 * 4 * 4, 10), nn.ReLU(),
    ), seed)


INPUT_SHAPE = (2, 14, 14)


def calibration_batches(batches: int = 3, batch_size: int = 4):
    import torch

    gen = torch.Generator().manual_seed(0)
    return [(torch.rand(batch_size, *INPUT_SHAPE, generator=gen), torch.zeros(batch_size))
            for _ in range(batches)]


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def nir_cnn():
    """Like tiny_cnn without AvgPool2d, which sinabs.to_nir does not support."""
    import torch.nn as nn

    return _seeded(lambda: nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(4 * 10 * 10, 10), nn.ReLU(),
    ), 0)
