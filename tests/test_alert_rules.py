"""The Prometheus alert rules: well-formed, in step with the metrics, and firing when due.

The structure and PromQL checks below always run. With Prometheus' `promtool` present
(Debian package `prometheus`), the rules are also checked by Prometheus' own parser and
every alert is run through a scenario of input series with `promtool test rules`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

RULES = Path(__file__).resolve().parents[1] / "config/prometheus/alerts.yml"

# The metric names the exporters promise (runtime/node/metrics.py, relay_app/metrics.py).
KNOWN_METRICS = {
    "cache_bytes_used",
    "outbox_queue_depth",
    "sync_lag_seconds",
    "sync_failures_total",
    "htpc_write_throughput_bytes_total",
    "commander_cache_full_events_total",
    "commander_cache_max_bytes",
    "commander_agent_up",
    "commander_set_aside_messages",
    "commander_refill_unrefillable_messages",
    "commander_relay_free_disk_bytes",
    "commander_relay_writes_refused_total",
    "commander_relay_node_last_report_age_seconds",
    "up",
}
SCRAPE_LABELS = {"instance", "job"}  # Prometheus adds them to every series
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
GROUPING = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)"
FUNCTIONS = {
    "abs", "absent", "avg", "avg_over_time", "ceil", "clamp_min", "count", "delta", "deriv",
    "floor", "histogram_quantile", "increase", "irate", "max", "max_over_time", "min",
    "min_over_time", "predict_linear", "rate", "resets", "round", "sum", "time", "topk",
}  # fmt: skip
DURATION = re.compile(r"^(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?(?:\d+ms)?$")
RULE_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}


def load() -> dict[str, Any]:
    """The rules file as data."""
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def alerts() -> list[dict[str, Any]]:
    """Every alerting rule, across groups."""
    return [rule for group in load()["groups"] for rule in group["rules"]]


def declared_metrics() -> dict[str, set[str]]:
    """The metric list in the header comment: name -> its labels."""
    declared: dict[str, set[str]] = {}
    lines = RULES.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# Metrics these rules use"))
    for line in lines[start + 1 :]:
        if line.strip() == "#":
            break
        match = re.match(r"^#\s+([a-zA-Z_:][\w:]*)(?:\{([\w,]*)\})?\s", line)
        if match:
            declared[match[1]] = set(filter(None, (match[2] or "").split(",")))
    return declared


def without_strings(expr: str) -> str:
    """The expression with every string literal emptied."""
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)


def identifiers(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, function names) used in a PromQL expression."""
    text = without_strings(expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(GROUPING, "", text)
    metrics: set[str] = set()
    functions: set[str] = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        if match[1].lower() in KEYWORDS:
            continue
        (functions if match[2] else metrics).add(match[1])
    return metrics, functions


def balanced(expr: str) -> bool:
    """Brackets nest properly outside string literals, and every string is closed."""
    text = without_strings(expr)
    if '"' in text.replace('""', "") or "'" in text.replace("''", ""):
        return False
    pairs, stack = {")": "(", "]": "[", "}": "{"}, []
    for char in text:
        if char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack


# --- the file's structure: always checked -----------------------------------------------


def test_the_file_is_groups_of_uniquely_named_alerting_rules() -> None:
    data = load()
    assert set(data) == {"groups"}
    names = [group["name"] for group in data["groups"]]
    assert len(names) == len(set(names))
    for group in data["groups"]:
        assert set(group) <= {"name", "interval", "rules"}
        assert group["rules"], f"group {group['name']} has no rules"
    alert_names = [rule.get("alert") for rule in alerts()]
    assert all(isinstance(n, str) and re.fullmatch(r"Commander[A-Z]\w+", n) for n in alert_names)
    assert len(alert_names) == len(set(alert_names))


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: str(rule.get("alert")))
def test_each_rule_is_complete(rule: dict[str, Any]) -> None:
    assert set(rule) <= RULE_KEYS, f"unknown keys {set(rule) - RULE_KEYS}"
    assert isinstance(rule["expr"], str)
    assert rule["expr"].strip()
    if "for" in rule:
        assert isinstance(rule["for"], str)
        assert rule["for"]
        assert DURATION.match(rule["for"])
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert all(isinstance(v, str) for v in rule["labels"].values())
    for key in ("summary", "description"):
        text = rule["annotations"][key]
        assert isinstance(text, str)
        assert text.strip()
        assert text.count("{{") == text.count("}}"), f"{key}: unbalanced template braces"


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: str(rule.get("alert")))
def test_each_expression_is_sane_promql(rule: dict[str, Any]) -> None:
    expr = rule["expr"]
    assert balanced(expr), expr
    assert re.search(r"[<>]|==|!=", without_strings(expr)), "an alert needs a comparison"
    for window in re.findall(r"\[([^\]]*)\]", without_strings(expr)):
        assert window
        assert DURATION.match(window), f"bad range [{window}]"
    metrics, functions = identifiers(expr)
    assert metrics, "no metric in the expression"
    assert functions <= FUNCTIONS, f"unknown functions {functions - FUNCTIONS}"


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: str(rule.get("alert")))
def test_each_rule_uses_only_declared_metrics_and_their_labels(rule: dict[str, Any]) -> None:
    declared = declared_metrics()
    metrics, _ = identifiers(rule["expr"])
    assert metrics <= set(declared), f"not in the header list: {metrics - set(declared)}"
    labels = set().union(*(declared[m] for m in metrics)) | SCRAPE_LABELS
    for name, matchers in re.findall(r"([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}", rule["expr"]):
        used = set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", without_strings(matchers)))
        assert used <= declared[name] | SCRAPE_LABELS, f"{name} has no label {used}"
    for grouped in re.findall(GROUPING, rule["expr"]):
        assert {g.strip() for g in grouped.split(",")} <= labels
    for text in rule["annotations"].values():
        referenced = set(re.findall(r"\$labels\.(\w+)", text))
        assert referenced <= labels, f"annotation uses labels {referenced - labels}"


def test_the_header_lists_exactly_the_metrics_the_rules_use() -> None:
    used = set().union(*(identifiers(rule["expr"])[0] for rule in alerts()))
    assert set(declared_metrics()) == used
    assert used <= KNOWN_METRICS, f"names nobody exports: {used - KNOWN_METRICS}"


def normalized(expr: str) -> str:
    """An expression with its whitespace collapsed, for comparing."""
    return " ".join(expr.split())


@pytest.mark.parametrize(
    ("alert", "expr", "duration"),
    [
        ("CommanderSyncLagHigh", "sync_lag_seconds > 60", "5m"),
        ("CommanderSyncFailuresRising", "increase(sync_failures_total[10m]) > 10", None),
        ("CommanderCacheFull", "increase(commander_cache_full_events_total[5m]) > 0", None),
        (
            "CommanderRelayWritesRefusedDiskFull",
            'increase(commander_relay_writes_refused_total{reason="disk_full"}[5m]) > 0',
            None,
        ),
        ("CommanderNodeNotReporting", "commander_relay_node_last_report_age_seconds > 60", None),
        ("CommanderTargetDown", 'up{job=~"commander-.*"} == 0', None),
    ],
)
def test_the_alerts_the_operators_asked_for_are_there(
    alert: str, expr: str, duration: str | None
) -> None:
    (rule,) = [rule for rule in alerts() if rule["alert"] == alert]
    assert normalized(rule["expr"]) == expr
    if duration:
        assert rule["for"] == duration


def test_the_sanity_checks_catch_broken_promql() -> None:
    assert not balanced("increase(sync_failures_total[10m] > 10")
    assert not balanced('up{job="commander} == 0')
    assert identifiers('max by (node) (rate(a_total{x="y"}[5m])) / on (node) b > 1e9') == (
        {"a_total", "b"},
        {"max", "rate"},
    )


# --- Prometheus' own tool, when installed ------------------------------------------------


def find_promtool() -> str | None:
    """promtool on PATH, in this venv's bin (a `make test` may put it there), or Debian's."""
    for candidate in (
        shutil.which("promtool"),
        str(Path(sys.executable).parent / "promtool"),
        "/usr/bin/promtool",
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="module")
def promtool() -> str:
    """The promtool binary, or a skip that says how to get it."""
    found = find_promtool()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing in CI: `make test` (target promtool) fetches it")
        pytest.skip("promtool not installed (`make promtool` fetches it from Debian's package)")
    return found


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run promtool and capture what it says."""
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_accepts_the_rules(promtool: str, tmp_path: Path) -> None:
    result = run([promtool, "check", "rules", str(RULES)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_promtool_rejects_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    """The check above is only worth something if promtool really parses the rules."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        RULES.read_text(encoding="utf-8").replace(
            "expr: sync_lag_seconds > 60", "expr: sync_lag_seconds > > 60"
        ),
        encoding="utf-8",
    )
    assert run([promtool, "check", "rules", str(broken)], tmp_path).returncode != 0


NODE = {"instance": "node-a:9101", "job": "commander-node", "node": "node-a"}
OTHER = {"instance": "node-b:9101", "job": "commander-node", "node": "node-b"}
RELAY = {"instance": "htpc:8001", "job": "commander-relay"}
GIB = 1024**3


def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    """One input series for promtool, in its `name{label="value"}` notation."""
    rendered = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return {"series": f"{name}{{{rendered}}}", "values": values}


def expect(alert: str, at: str, *firing: dict[str, str]) -> dict[str, Any]:
    """An expectation: at time ``at`` exactly these label sets fire ``alert``."""
    return {
        "eval_time": at,
        "alertname": alert,
        "exp_alerts": [{"exp_labels": labels} for labels in firing],
    }


def scenarios() -> list[dict[str, Any]]:
    """For every alert: input series, when it must fire, and when it must not."""
    agent = {**NODE, "agent": "commander-001"}
    synced = {**NODE, "agent": "reasoner-001"}
    unlimited = {**NODE, "agent": "recruiter-001"}
    warning, critical = {"severity": "warning"}, {"severity": "critical"}
    free, age = "commander_relay_free_disk_bytes", "commander_relay_node_last_report_age_seconds"
    relay_a, relay_b, relay_c = ({**RELAY, "instance": f"relay-{x}:8001"} for x in "abc")
    return [
        {  # lag grows a minute a minute (over 60 s from 2m, over 1800 s from 31m); 30 s is fine
            "input_series": [
                series("sync_lag_seconds", NODE, "0 30 90+60x40"),
                series("sync_lag_seconds", OTHER, "30x40"),
            ],
            "alert_rule_test": [
                expect("CommanderSyncLagHigh", "6m"),
                expect("CommanderSyncLagHigh", "8m", {**NODE, **warning}),
                expect("CommanderSyncLagCritical", "35m"),
                expect("CommanderSyncLagCritical", "37m", {**NODE, **critical}),
            ],
        },
        {  # 2 failures a minute is 20 in 10 minutes; half a failure a minute is 5
            "input_series": [
                series("sync_failures_total", NODE, "0+2x30"),
                series("sync_failures_total", OTHER, "0+0.5x30"),
            ],
            "alert_rule_test": [expect("CommanderSyncFailuresRising", "20m", {**NODE, **warning})],
        },
        {  # a refused write fires at once and resolves once no more are refused
            "input_series": [
                series("commander_cache_full_events_total", agent, "0 0 0 1 1 1x20"),
                series("commander_cache_full_events_total", synced, "0x25"),
            ],
            "alert_rule_test": [
                expect("CommanderCacheFull", "2m"),
                expect("CommanderCacheFull", "4m", {**agent, **critical}),
                expect("CommanderCacheFull", "15m"),
            ],
        },
        {  # nearly full with unsynced messages warns; full of synced ones or no limit: quiet
            "input_series": [
                series("cache_bytes_used", agent, "950x20"),
                series("commander_cache_max_bytes", agent, "1000x20"),
                series("outbox_queue_depth", agent, "5x20"),
                series("cache_bytes_used", synced, "990x20"),
                series("commander_cache_max_bytes", synced, "1000x20"),
                series("outbox_queue_depth", synced, "0x20"),
                series("cache_bytes_used", unlimited, "990x20"),
                series("commander_cache_max_bytes", unlimited, "0x20"),
                series("outbox_queue_depth", unlimited, "5x20"),
            ],
            "alert_rule_test": [
                expect("CommanderCacheFillingWithUnsyncedMessages", "5m"),
                expect("CommanderCacheFillingWithUnsyncedMessages", "15m", {**agent, **warning}),
            ],
        },
        {  # an agent down for 2 minutes fires, one that comes back at once does not
            "input_series": [
                series("commander_agent_up", agent, "1 0 0 0 0x10"),
                series("commander_agent_up", synced, "1 0 1x12"),
            ],
            "alert_rule_test": [
                expect("CommanderAgentDown", "2m"),
                expect("CommanderAgentDown", "4m", {**agent, **critical}),
            ],
        },
        {  # a set-aside message warns at once, and stops once it is retried away
            "input_series": [
                series("commander_set_aside_messages", agent, "0 2 2 0x10"),
                series("commander_set_aside_messages", synced, "0x13"),
            ],
            "alert_rule_test": [
                expect("CommanderMessagesSetAside", "0m"),
                expect("CommanderMessagesSetAside", "1m", {**agent, **warning}),
                expect("CommanderMessagesSetAside", "5m"),
            ],
        },
        {  # messages the relay lacks and no node holds warn; a full refill clears it
            "input_series": [
                series("commander_refill_unrefillable_messages", agent, "0 7 7 0x10"),
                series("commander_refill_unrefillable_messages", synced, "0x13"),
            ],
            "alert_rule_test": [
                expect("CommanderRefillCannotMendRelay", "0m"),
                expect("CommanderRefillCannotMendRelay", "1m", {**agent, **warning}),
                expect("CommanderRefillCannotMendRelay", "5m"),
            ],
        },
        {  # refusals for a full disk fire; refusals for other reasons do not
            "input_series": [
                series(
                    "commander_relay_writes_refused_total",
                    {**RELAY, "reason": "disk_full"},
                    "0 0 2 2x20",
                ),
                series(
                    "commander_relay_writes_refused_total",
                    {**RELAY, "reason": "too_large"},
                    "0 5 10 15x20",
                ),
            ],
            "alert_rule_test": [
                expect(
                    "CommanderRelayWritesRefusedDiskFull",
                    "3m",
                    {**RELAY, "reason": "disk_full", **critical},
                ),
            ],
        },
        {  # 512 MiB free is critical, 5 GiB is low, 50 GiB and steady is fine
            "input_series": [
                series(free, relay_a, f"{GIB // 2}x30"),
                series(free, relay_b, f"{5 * GIB}x30"),
                series(free, relay_c, f"{50 * GIB}x30"),
            ],
            "alert_rule_test": [
                expect("CommanderRelayDiskCritical", "3m"),
                expect("CommanderRelayDiskCritical", "6m", {**relay_a, **critical}),
                expect(
                    "CommanderRelayDiskLow",
                    "20m",
                    {**relay_a, **warning},
                    {**relay_b, **warning},
                ),
                expect("CommanderRelayDiskFillsWithinADay", "60m"),
            ],
        },
        {  # 100 GiB falling by 0.1 GiB a minute runs out in under a day
            "input_series": [
                series(free, RELAY, f"{100 * GIB}-{GIB // 10}x90"),
            ],
            "alert_rule_test": [
                expect("CommanderRelayDiskFillsWithinADay", "20m"),
                expect("CommanderRelayDiskFillsWithinADay", "40m", {**RELAY, **warning}),
                expect("CommanderRelayDiskLow", "40m"),
            ],
        },
        {  # a node silent for minutes fires; one that reports every few seconds does not
            "input_series": [
                series(age, {**RELAY, "node": "a"}, "0+60x10"),
                series(age, {**RELAY, "node": "b"}, "5x10"),
            ],
            "alert_rule_test": [
                expect("CommanderNodeNotReporting", "3m"),
                expect("CommanderNodeNotReporting", "5m", {**RELAY, "node": "a", **warning}),
            ],
        },
        {  # a commander target down for 2 minutes fires; other jobs are not ours
            "input_series": [
                series("up", NODE, "1 1 0x10"),
                series("up", RELAY, "1x12"),
                series("up", {"instance": "x:9100", "job": "node-exporter"}, "0x12"),
            ],
            "alert_rule_test": [
                expect("CommanderTargetDown", "3m"),
                expect("CommanderTargetDown", "5m", {**NODE, **critical}),
            ],
        },
    ]


def test_every_alert_fires_in_its_scenario_and_only_there(promtool: str, tmp_path: Path) -> None:
    # Annotations are left out: promtool compares them verbatim, and their wording is
    # checked above; these scenarios are about when each alert fires.
    data = load()
    for rule in (rule for group in data["groups"] for rule in group["rules"]):
        rule.pop("annotations")
    rules = tmp_path / "alerts.yml"
    rules.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    tests = [{"interval": "1m", **scenario} for scenario in scenarios()]
    covered = {e["alertname"] for t in tests for e in t["alert_rule_test"] if e["exp_alerts"]}
    assert covered == {rule["alert"] for rule in alerts()}, "an alert without a firing case"
    spec = {"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": tests}
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    result = run([promtool, "test", "rules", "tests.yml"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
