"""Framework extensions: the registry loads them lazily, and a third-party
extension registered through the entry-point group works end to end without
any edit to the plugin (real distributions on a temp path, a fresh process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from opentelemetry_instrumentation_spikeformer import frameworks
from opentelemetry_instrumentation_spikeformer.frameworks.base import B, BT, Framework, NeuronRule

# A library nobody instruments: a converter and a spiking neuron of its own.
LIBRARY = textwrap.dedent('''
    import torch

    class AcmeLIF(torch.nn.Module):
        """(B, T, ...) in and out, membrane in `v`."""
        def forward(self, x):
            self.v = torch.zeros_like(x[:, 0])
            out = []
            for t in range(x.shape[1]):
                self.v = self.v + x[:, t]
                spike = (self.v >= 1.0).float()
                self.v = self.v - spike
                out.append(spike)
            return torch.stack(out, 1)

    def convert(model, chip="acme-npu:0"):
        layers = []
        for m in model:
            layers.append(AcmeLIF() if isinstance(m, torch.nn.ReLU) else m)
        return torch.nn.Sequential(*layers)
''')

# Its extension, in another distribution: one module, nothing else.
EXTENSION = textwrap.dedent('''
    from opentelemetry_instrumentation_spikeformer.core.attributes import CONVERSION
    from opentelemetry_instrumentation_spikeformer.core.targets import Target
    from opentelemetry_instrumentation_spikeformer.frameworks.base import BT, Framework, NeuronRule

    FRAMEWORK = Framework(
        name="acme",
        packages=("acme_snn",),
        targets=(Target("acme_snn", "convert", CONVERSION, "acme", model="model", hardware="chip"),),
        neurons=(NeuronRule("AcmeLIF", BT, "v", True),),
        hardware=("acme-npu",),
    )
''')

SCRIPT = textwrap.dedent('''
    import json, sys
    import torch
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry_instrumentation_spikeformer import SpikeformerInstrumentor

    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tp = TracerProvider(); tp.add_span_processor(SimpleSpanProcessor(spans))
    mp = MeterProvider(metric_readers=[reader])
    SpikeformerInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
    loaded_before_import = "acme_snn_otel" in sys.modules
    import acme_snn

    torch.manual_seed(0)
    ann = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    snn = acme_snn.convert(ann)
    x = torch.rand(2, 4, 3) * 2
    spikes = []
    snn[1].register_forward_hook(lambda m, i, o: spikes.append(float(o.sum())))
    snn(x)
    (span,) = spans.get_finished_spans()
    points = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                points[metric.name] = [(dict(p.attributes), getattr(p, "value", None))
                                       for p in metric.data.data_points]
    print(json.dumps({"loaded_before_import": loaded_before_import, "name": span.name,
                      "attributes": dict(span.attributes), "spikes": spikes,
                      "points": points}))
''')


@pytest.fixture
def acme(tmp_path):
    """Two real distributions on a temp path: the library, and its extension
    registered under the plugin's entry-point group."""
    (tmp_path / "acme_snn.py").write_text(LIBRARY)
    (tmp_path / "acme_snn_otel.py").write_text(EXTENSION)
    info = tmp_path / "acme_snn_otel-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-snn-otel\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{frameworks.ENTRY_POINT_GROUP}]\nacme_snn = acme_snn_otel:FRAMEWORK\n")
    (tmp_path / "script.py").write_text(SCRIPT)
    return tmp_path


def test_entry_point_extension_works_end_to_end(acme):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(PYTHONPATH=str(acme), PIP_NO_INDEX="1")
    done = subprocess.run([sys.executable, str(acme / "script.py")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert out["loaded_before_import"] is False  # lazily, at the library's import
    assert out["name"] == "spikeformer.convert acme"
    assert out["attributes"]["spikeformer.hardware.target"] == "acmenpu"  # its hardware name
    assert out["attributes"]["spikeformer.snn.spiking_layers"] == 1  # its neuron rule
    (point,) = out["points"]["neural.spikes"]
    assert point[0] == {"model_name": "Sequential", "layer_name": "1", "neuron_type": "AcmeLIF"}
    assert point[1] == sum(out["spikes"]) > 0  # monitored through its layout
    (conversions,) = out["points"]["spikeformer.conversions"]
    assert conversions[0]["framework"] == "acme" and conversions[1] == 1


def test_extensions_load_only_when_their_library_is_imported():
    """`instrument()` imports no extension module; importing the library does."""
    code = ("import sys\n"
            "from opentelemetry_instrumentation_spikeformer import SpikeformerInstrumentor\n"
            "SpikeformerInstrumentor().instrument()\n"
            "ext = 'opentelemetry_instrumentation_spikeformer.frameworks.'\n"
            "loaded = lambda: sorted(m[len(ext):] for m in sys.modules\n"
            "                        if m.startswith(ext) and m != ext + 'base')\n"
            "before = loaded()\n"
            "import snntorch\n"
            "after = loaded()\n"
            "print(before, after, 'torch' in sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["[]", "['snntorch']", "True"]


def test_broken_extension_is_one_warning(caplog, monkeypatch):
    monkeypatch.setitem(frameworks.BUILTIN, "broken_pkg", ".no_such_extension")
    monkeypatch.setattr(frameworks, "_loaded", {})
    frameworks._loaders.cache_clear()
    try:
        assert frameworks.for_package("broken_pkg") is None
        assert frameworks.for_package("broken_pkg") is None
    finally:
        frameworks._loaders.cache_clear()
    lines = [r.getMessage() for r in caplog.records if "broken_pkg" in r.getMessage()]
    assert len(lines) == 1 and "failed to load" in lines[0]


def test_neuron_rules_match_user_subclasses_and_stay_within_their_package():
    import torch
    from spikingjelly.activation_based import neuron

    class MyLIF(neuron.LIFNode):  # defined here, in the test module
        pass

    class BaseNode(torch.nn.Module):  # same name as spikingjelly's base, other package
        pass

    assert frameworks.neuron_rule(MyLIF(step_mode="m")).layout_of(MyLIF(step_mode="m")) == "tb"
    assert frameworks.neuron_rule(BaseNode()) is None


def test_rules_are_declarative_and_validated():
    with pytest.raises(ValueError):
        NeuronRule("X", "sideways", "v", True)
    with pytest.raises(ValueError, match="entry 'encode' on a non-source"):
        NeuronRule("X", B, None, True, role="consumer", consumes="linear", entry="encode")
    assert NeuronRule("X", B, None, True, role="encoder", entry="encode").entry == "encode"
    fw = Framework("f", ("f",), neurons=(NeuronRule("A", B, "v", False),
                                         NeuronRule("Base", BT, "v", True)))
    assert fw.neuron_rule(type("A", (), {"__module__": "f.x"})).layout == B
    assert fw.neuron_rule(type("A", (), {"__module__": "g.x"})) is None
