"""A Prometheus for `up --processes --prometheus`: every process a target, as
``deploy/observability/prometheus.yml`` labels them (job ``delinkcious``, ``service`` as
the code names it), scraped every 2 s so that a rollout's analysis has data quickly.

Its targets are a file (``file_sd``) rewritten whenever ``processes.yaml`` changes, and
Prometheus re-reads it by itself: a replica a rollout starts is scraped within seconds.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import yaml

from delinkcious.local.processes import Process
from delinkcious.platform.supervisor import ProcessSpec

SCRAPE_INTERVAL = "2s"


def write_targets(directory: Path, host: str, processes: Sequence[Process]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    targets = [
        {
            "targets": [f"{host}:{process.port}"],
            "labels": {"service": process.service, "process": process.name},
        }
        for process in processes
    ]
    aside = directory / ".targets.json.new"
    aside.write_text(json.dumps(targets, indent=1))
    aside.replace(directory / "targets.json")


def spec(directory: Path, host: str, port: int) -> ProcessSpec:
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": "delinkcious",
                # The service metrics carry the `service` of the method that ran: it wins.
                "honor_labels": True,
                "file_sd_configs": [
                    {"files": [str(directory / "targets.json")], "refresh_interval": "2s"}
                ],
            }
        ],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    binary = shutil.which("prometheus") or "prometheus"
    return ProcessSpec(
        name="prometheus",
        argv=[
            binary,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            "--storage.tsdb.retention.time=1d",
            f"--web.listen-address={host}:{port}",
            "--log.level=warn",
        ],
        env={},
        ready_url=f"http://{host}:{port}/-/ready",
    )
