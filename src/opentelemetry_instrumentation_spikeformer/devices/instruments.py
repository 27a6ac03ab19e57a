"""Observable instruments over the poller's last results (``metrics.HARDWARE_METRICS``).

Callbacks only copy the last snapshots, so a collection costs microseconds
whatever the hardware does. Callbacks cannot be unregistered: each checks
``is_enabled()`` and yields nothing once the feature is stopped. A reading an
adapter could not take is skipped, never reported as 0.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.semconv._incubating.attributes.hw_attributes import HW_STATE

from ..core.attributes import M_ERROR_TYPE
from ..core.metrics import MetricSpec
from . import metrics as specs
from .base import STATES
from .poller import AdapterView

_LOG = logging.getLogger(__name__)
Views = Callable[[], Iterable[AdapterView]]


def _status(views: Views) -> Iterable[Observation]:
    for view in views():
        for snap in view.snapshots:
            attrs = snap.device.attributes()
            for state in STATES:
                yield Observation(int(snap.state == state), {**attrs, HW_STATE: state})


def _errors(views: Views) -> Iterable[Observation]:
    for view in views():
        for device, kind, count in view.errors:
            yield Observation(count, {**device.attributes(), M_ERROR_TYPE: kind})


def _readings(spec: MetricSpec) -> Callable[[Views], Iterable[Observation]]:
    def observe(views: Views) -> Iterable[Observation]:
        for view in views():
            for snap in view.snapshots:
                value = snap.reading(spec.name)
                if value is not None:
                    yield Observation(value, snap.device.attributes() if spec.attributes else {})

    return observe


_CUSTOM = {specs.HW_STATUS.name: _status, specs.HW_ERRORS.name: _errors}


def register(meter, views: Views, is_enabled: Callable[[], bool]) -> None:
    """Create one observable instrument per hardware metric spec on ``meter``."""
    for spec in specs.HARDWARE_METRICS:
        observe = _CUSTOM.get(spec.name) or _readings(spec)

        def callback(options: CallbackOptions, observe=observe, name=spec.name):
            if not is_enabled():
                return []
            try:
                return list(observe(views))
            except Exception:  # never break the SDK's collection
                _LOG.debug("hardware callback %s failed", name, exc_info=True)
                return []

        spec.create(meter, [callback])
