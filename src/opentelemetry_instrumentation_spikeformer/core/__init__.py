"""Framework-free core: settings, attribute names, metric specs, target rows,
patching, the wrapper and the telemetry of one measured call."""
