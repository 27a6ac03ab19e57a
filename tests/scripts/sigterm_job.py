"""A user's script with no OpenTelemetry code that is stopped by SIGTERM after
its work, as torchrun stops the surviving ranks of a failed job."""

import os
import signal
import sys
import time

import sinabs
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from models import INPUT_SHAPE, tiny_cnn  # noqa: E402

net = sinabs.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1)
with torch.no_grad():
    for _ in range(3):
        net.reset_states()
        net(torch.rand(1, *INPUT_SHAPE) * 3)
print("work done", flush=True)
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(30)  # never reached: SIGTERM ends the process either way
print("not stopped", flush=True)
