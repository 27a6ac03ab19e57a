"""Module-level functions pickles refer to: what spawned children run and a
user's forward hook (importable without pytest or the plugin)."""

from __future__ import annotations


def forward_sum(model, shape):
    import torch

    with torch.no_grad():
        return float(model(torch.ones(*shape)).sum())


def forward_to_file(rank, model, shape, path):
    """``torch.multiprocessing.spawn`` entry: the forward's sum, written to ``path``."""
    with open(path, "w") as handle:
        handle.write(repr(forward_sum(model, shape)))


def user_hook(module, args, output):
    """A forward hook the user registered before converting."""
    return None
