"""The commands' SDK set-up: bad endpoints give one clear line, never a traceback."""

from __future__ import annotations

import socket

import pytest

from opentelemetry_instrumentation_spikeformer.tools.sdk_setup import build_providers, warn_if_unreachable


def test_busy_prometheus_port_is_one_line_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as exit_info:
            build_providers("t", prometheus=("127.0.0.1", port))
    message = str(exit_info.value.code)
    assert f"cannot serve Prometheus metrics on 127.0.0.1:{port}" in message
    assert "\n" not in message


def test_unreachable_otlp_endpoint_warns_once(capsys):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: connection refused
        assert warn_if_unreachable(f"http://127.0.0.1:{port}") is False
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"127.0.0.1:{port} unreachable" in err
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        assert warn_if_unreachable(f"127.0.0.1:{listening.getsockname()[1]}") is True
    assert capsys.readouterr().err == ""
