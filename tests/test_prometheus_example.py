"""The example scrape configuration: the job names the alert rules match, the relay's token."""

from __future__ import annotations

from pathlib import Path

import yaml

EXAMPLE = Path(__file__).resolve().parents[1] / "config/prometheus/prometheus.yml"


def test_the_example_scrapes_both_jobs_and_sends_the_relays_metrics_token() -> None:
    config = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"commander-relay", "commander-node"}  # alerts.yml's `up` rule
    authorization = jobs["commander-relay"]["authorization"]
    assert authorization["type"] == "Bearer"
    assert authorization["credentials_file"].endswith(".token")
