import torch
import torch.nn as nn


class LifNeuron(nn.Module):
    """The kit's interface: (batch, time, ...) in and out, state in `membrane_potential`."""

    def __init__(self, threshold: float = 1.0, tau_mem: float = 20.0):
        super().__init__()
        self.threshold = threshold
        self.alpha = float(torch.exp(torch.tensor(-1.0 / tau_mem)))
        self.register_buffer("membrane_potential", None)

    def reset_state(self):
        self.membrane_potential = None

    def forward(self, x):
        batch, steps = x.shape[:2]
        if self.membrane_potential is None or self.membrane_potential.shape[0] != batch:
            self.membrane_potential = torch.zeros(batch, *x.shape[2:], device=x.device)
        spikes = []
        for t in range(steps):
            self.membrane_potential = self.alpha * self.membrane_potential + x[:, t]
            spike = (self.membrane_potential >= self.threshold).float()
            self.membrane_potential = self.membrane_potential - spike * self.threshold
            spikes.append(spike)
        return torch.stack(spikes, dim=1)
