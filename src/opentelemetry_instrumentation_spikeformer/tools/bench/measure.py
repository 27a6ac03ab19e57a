"""Timing: per-sample latency and batched throughput, on the device the model is on.

Both run without a spike monitor attached (the runner detaches its own before
timing), so they time the model, not the telemetry. CUDA work is synchronised
before each clock read.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

WARMUP = 3


def _sync(device: str) -> Callable[[], None]:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


def latencies(infer: Callable[[Any], Any], x: Any, samples: int, device: str) -> list[float]:
    """Seconds per single-sample inference for the first ``samples`` rows of ``x``."""
    sync = _sync(device)
    count = min(samples, len(x))
    for i in range(min(WARMUP, count)):
        infer(x[i:i + 1])
    sync()
    found = []
    clock = time.perf_counter
    for i in range(count):
        start = clock()
        infer(x[i:i + 1])
        sync()
        found.append(clock() - start)
    return found


def throughput(infer: Callable[[Any], Any], x: Any, batch_size: int, device: str,
               min_seconds: float) -> float:
    """Samples per second over ``x`` in batches; passes repeat until ``min_seconds``."""
    sync = _sync(device)
    infer(x[:batch_size])  # warm-up
    sync()
    samples, start = 0, time.perf_counter()
    while True:
        for at in range(0, len(x), batch_size):
            infer(x[at:at + batch_size])
        sync()
        samples += len(x)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return samples / elapsed


def quantile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolation quantile (numpy's default) of the raw samples."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)
