"""promtool and amtool on the stack's Prometheus and Alertmanager files: config
and rule syntax, the rule unit tests (that they pass, and that they would catch
a broken rule), dashboard queries as valid PromQL, and the alert routes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from collector_support import (
    ALERTMANAGER, ALERTS, ALERTS_TEST, PROMETHEUS_DIR, alert_rules, all_dashboard_exprs,
    grafana_to_promql, load_yaml, require_tool, run,
)

pytestmark = [pytest.mark.subprocess, pytest.mark.servers]


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_tool("promtool")


@pytest.fixture(scope="module")
def amtool() -> str:
    return require_tool("amtool")


def ok(result) -> None:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"


def test_prometheus_config_is_valid(promtool):
    result = run([promtool, "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")])
    ok(result)
    assert "1 rule files found" in result.stdout + result.stderr


def test_alert_rules_are_valid(promtool):
    result = run([promtool, "check", "rules", str(ALERTS)])
    ok(result)
    assert f"{len(alert_rules())} rules found" in result.stdout


def test_alert_rule_unit_tests_pass(promtool):
    ok(run([promtool, "test", "rules", str(ALERTS_TEST)]))


def test_every_alert_has_a_firing_and_a_quiet_case():
    cases: dict[str, set[bool]] = {}
    for group in load_yaml(ALERTS_TEST)["tests"]:
        for case in group.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], set()).add(bool(case["exp_alerts"]))
    for rule in alert_rules():
        assert cases.get(rule["alert"]) == {True, False}, (
            f"{rule['alert']}: needs one eval that fires and one that stays quiet")


@pytest.mark.parametrize("alert,old,new", [
    ("HighCompilationFailureRate", "> 0.05", "> 0.5"),
    ("HardwareDisconnected", 'hw_state="failed"} == 1', 'hw_state="ok"} == 0'),
    ("EnergyEfficiencyDegraded", "for: 10m", "for: 30m"),
    ("EnergyEfficiencyDegraded", "energy_efficiency_ratio < 1", "energy_efficiency_ratio < 0.5"),
])
def test_unit_tests_catch_a_broken_rule(promtool, tmp_path: Path, alert, old, new):
    """The unit tests have teeth: a weakened rule makes them fail."""
    text = ALERTS.read_text()
    assert text.count(old) == 1, old
    (tmp_path / "alerts.yml").write_text(text.replace(old, new))
    tests = load_yaml(ALERTS_TEST)
    tests["rule_files"] = ["alerts.yml"]
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))
    result = run([promtool, "test", "rules", str(tmp_path / "tests.yml")])
    assert result.returncode != 0
    assert f"alertname: {alert}" in result.stdout + result.stderr


def test_dashboard_queries_are_valid_promql(promtool, tmp_path: Path):
    exprs = all_dashboard_exprs()
    rules = [{"record": f"dashboard:query_{i}", "expr": grafana_to_promql(expr)}
             for i, expr in enumerate(exprs.values())]
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = run([promtool, "check", "rules", str(path)])
    ok(result)
    assert f"{len(rules)} rules found" in result.stdout


def test_alertmanager_config_is_valid(amtool):
    result = run([amtool, "check-config", str(ALERTMANAGER)])
    ok(result)
    assert "3 receivers" in result.stdout


def expected_receivers(labels: dict[str, str]) -> list[str]:
    receivers = []
    if labels.get("severity") == "critical":
        receivers.append("critical-alerts")
    if labels.get("team") == "hardware":
        receivers.append("hardware-team")
    return receivers or ["default"]


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_each_alert_reaches_its_receivers(amtool, rule):
    labels = {"alertname": rule["alert"], **rule.get("labels", {})}
    result = run([amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}",
                  *(f"{k}={v}" for k, v in labels.items())])
    ok(result)
    assert result.stdout.strip().split(",") == expected_receivers(labels)


def test_hardware_alerts_go_to_the_hardware_team():
    by_name = {r["alert"]: r for r in alert_rules()}
    for name in ("HardwareDisconnected", "HardwareCommunicationErrors"):
        assert by_name[name]["labels"]["team"] == "hardware"
    assert by_name["HardwareDisconnected"]["labels"]["severity"] == "critical"


def test_alertmanager_holds_no_credentials():
    text = ALERTMANAGER.read_text()
    assert "hooks.slack.com" not in text and "api_url:" not in text
    assert "smtp_auth_password" not in text and "password" not in text.lower()
    slack = [c for r in load_yaml(ALERTMANAGER)["receivers"] for c in r.get("slack_configs", [])]
    assert slack and all("api_url_file" in c for c in slack)
