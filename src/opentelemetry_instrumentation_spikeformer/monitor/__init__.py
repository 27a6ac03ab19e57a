"""Runtime spike activity and energy monitor for SNN inference.

``monitor_model(model, name)`` hooks the spiking layers of a sinabs,
spikingjelly, snntorch or Spikeformer-kit model; the instrumentor does the
same for every model an instrumented conversion returns. Counts accumulate on
the model's device and are read once per metric collection. Importing this
package imports no torch.
"""

from __future__ import annotations

from .spike_monitor import SpikeMonitor, monitor_model

__all__ = ["SpikeMonitor", "monitor_model"]
