"""Does the spike monitor force a host-device sync on the forward path? (GPU only)

For each model (sinabs squeeze CNN, spikingjelly single- and multi-step,
snntorch Leaky, a seed-kit style LifNeuron) this runs forwards bare and then
with ``monitor_model`` attached, under ``torch.cuda.set_sync_debug_mode``:
first "warn" to count the synchronizing calls of each run (the libraries may
sync on their own; that is the baseline), then "error" on the monitored model
when the bare baseline is zero. ``read()`` runs afterwards, outside the check.
Exit status 1 when the monitor adds any synchronizing call.

    .venv/bin/python benchmarks/cuda_sync_check.py            # needs CUDA
    .venv/bin/python benchmarks/cuda_sync_check.py --device cpu  # dry run of the script
"""

from __future__ import annotations

import argparse
import sys
import warnings


def build_models(device: str):
    import sinabs
    import snntorch
    import torch
    import torch.nn as nn
    from spikingjelly.activation_based import functional, layer, neuron

    torch.manual_seed(0)
    batch, steps = 8, 16
    ann = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                        nn.Flatten(), nn.Linear(16 * 8 * 8, 10), nn.ReLU())
    cnn = sinabs.from_model(ann, input_shape=(2, 32, 32), batch_size=batch,
                            num_timesteps=steps).spiking_model.to(device)
    cnn_x = (torch.rand(batch * steps, 2, 32, 32, device=device) < 0.3).float()

    sj = nn.Sequential(layer.Linear(64, 32), neuron.IFNode(), layer.Linear(32, 10),
                       neuron.IFNode()).to(device)
    sj_x = torch.rand(batch, 64, device=device) * 2

    def sj_run(model):
        for _ in range(steps):
            model(sj_x)
        functional.reset_net(model)

    sjm = nn.Sequential(layer.Linear(64, 32), neuron.LIFNode(), layer.Linear(32, 10),
                        neuron.LIFNode()).to(device)
    functional.set_step_mode(sjm, "m")
    sjm_x = torch.rand(steps, batch, 64, device=device) * 2

    def sjm_run(model):
        model(sjm_x)
        functional.reset_net(model)

    class Snt(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.lif1 = nn.Linear(64, 32), snntorch.Leaky(beta=0.9)
            self.fc2, self.lif2 = nn.Linear(32, 10), snntorch.Leaky(beta=0.9)

        def forward(self, x, mem1, mem2):
            spk, mem1 = self.lif1(self.fc1(x), mem1)
            spk, mem2 = self.lif2(self.fc2(spk), mem2)
            return spk, mem1, mem2

    snt = Snt().to(device)

    def snt_run(model):
        mem1, mem2 = model.lif1.reset_mem(), model.lif2.reset_mem()
        for _ in range(steps):
            _, mem1, mem2 = model(sj_x, mem1, mem2)

    class LifNeuron(nn.Module):  # the Spikeformer kit's interface: (B, T, ...) in and out
        def __init__(self):
            super().__init__()
            self.register_buffer("membrane_potential", None)

        def forward(self, x):
            self.membrane_potential = torch.zeros_like(x[:, 0])
            out = []
            for t in range(x.shape[1]):
                self.membrane_potential = 0.9 * self.membrane_potential + x[:, t]
                spike = (self.membrane_potential >= 1.0).float()
                self.membrane_potential = self.membrane_potential - spike
                out.append(spike)
            return torch.stack(out, dim=1)

    kit = nn.Sequential(nn.Linear(64, 32), LifNeuron(), nn.Linear(32, 10), LifNeuron()).to(device)
    kit_x = torch.rand(batch, steps, 64, device=device) * 2

    def cnn_run(model):
        for module in model.modules():
            if hasattr(module, "reset_states"):
                module.reset_states()
        model(cnn_x)

    return {
        "sinabs IAFSqueeze CNN": (cnn, cnn_run),
        "spikingjelly single-step": (sj, sj_run),
        "spikingjelly multi-step": (sjm, sjm_run),
        "snntorch Leaky": (snt, snt_run),
        "seed-kit LifNeuron": (kit, lambda m: m(kit_x)),
    }


def count_syncs(run, model, device: str) -> int:
    """Synchronizing CUDA calls made by ``run(model)`` (sync debug mode "warn")."""
    import torch

    if device == "cpu":
        run(model)
        return 0
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run(model)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    return sum("synchroniz" in str(w.message).lower() for w in caught)


def main() -> int:
    import torch

    from opentelemetry_instrumentation_spikeformer.monitor import monitor_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--forwards", type=int, default=5)
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: nothing checked (use --device cpu for a dry run)")
        return 2
    failed = False
    print(f"torch {torch.__version__}, device {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else ""))
    with torch.no_grad():
        for name, (model, run) in build_models(args.device).items():
            run(model)  # warm-up: lazy library state, cuDNN autotuning
            bare = sum(count_syncs(run, model, args.device) for _ in range(args.forwards))
            monitor = monitor_model(model, name.replace(" ", "_"))
            run(model)  # first monitored forward: discovery pass, accumulator allocation
            monitored = sum(count_syncs(run, model, args.device) for _ in range(args.forwards))
            strict = "n/a on cpu"
            if args.device.startswith("cuda") and bare:
                strict = "skipped (the library syncs by itself)"
            elif args.device.startswith("cuda"):
                torch.cuda.set_sync_debug_mode("error")
                try:
                    run(model)
                    strict = "passed"
                except RuntimeError as exc:
                    strict = f"FAILED: {exc}"
                finally:
                    torch.cuda.set_sync_debug_mode("default")
            snap = monitor.read()  # the one transfer, outside the check
            monitor.detach()
            added = monitored - bare
            failed |= added > 0 or strict.startswith("FAILED")
            print(f"{name:<26} syncs/{args.forwards} runs: bare {bare}, monitored {monitored} "
                  f"(added {added}); mode 'error' on the monitored model: {strict}; "
                  f"spikes read {snap['totals']['spikes']:.0f}")
    print("RESULT:", "FAIL" if failed else "OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
