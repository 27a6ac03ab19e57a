import torch
import torch.nn as nn


class LifNeuron(nn.Module):
    """Leaky integrate-and-fire over the leading time dimension (T, B, ...)."""

    def __init__(self, threshold: float = 1.0, beta: float = 0.9):
        super().__init__()
        self.threshold = threshold
        self.beta = beta

    def forward(self, x):
        v = torch.zeros_like(x[0])
        out = []
        for t in range(x.shape[0]):
            v = self.beta * v + x[t]
            s = (v >= self.threshold).to(x.dtype)
            v = v - s * self.threshold
            out.append(s)
        return torch.stack(out)
