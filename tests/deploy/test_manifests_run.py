"""The manifests run: the rendered staging overlay started as local processes passes its own
probes and the smoke test through the gateway, and stops within its grace period.

A wrong variable name, port, probe path, missing setting, a password that does not match
its role, or a write outside the mounted /tmp fails here (see local_cluster.py for how the
cluster is played and what is not)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.deploy.local_cluster import LocalCluster
from tests.deploy.manifests import BIN, Obj, data_of, ours


@pytest.fixture(scope="module")
def cluster(
    rendered: dict[str, list[Obj]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    running = LocalCluster(rendered["staging"], tmp_path_factory.mktemp("cluster"))
    try:
        running.mount_config_maps()
        pods = running.pods
        running.start_postgres(pods["postgres"])
        running.start_backend(pods["redis"], "redis-server", ["--bind", pods["redis"].ip])
        running.start_backend(pods["nats"], "/usr/sbin/nats-server", ["--addr", pods["nats"].ip])
        running.wait_for(lambda: running.probe(pods["nats"], "readinessProbe"), "nats ready")
        for name in ours(rendered["staging"]).values():
            running.start_service(pods[name["metadata"]["name"]])
        yield running
    finally:
        running.stop_all()


def test_every_service_passes_its_own_probes(
    cluster: LocalCluster, rendered: dict[str, list[Obj]]
) -> None:
    for deployment in ours(rendered["staging"]).values():
        pod = cluster.pods[deployment["metadata"]["name"]]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            cluster.wait_for(lambda: cluster.probe(pod, probe), f"{pod.name} {probe}")  # noqa: B023


def test_the_smoke_test_passes_through_the_gateway(cluster: LocalCluster) -> None:
    gateway = cluster.pods["gateway"]
    cluster.wait_for(lambda: cluster.probe(gateway, "readinessProbe"), "gateway ready")
    done = subprocess.run(
        [
            str(BIN / "delinkcious"),
            "smoke",
            "--url",
            f"http://{gateway.ip}:{gateway.port('http')}",
            "--timeout",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_fluent_bit_reads_their_log_lines(
    cluster: LocalCluster, rendered: dict[str, list[Obj]]
) -> None:
    """Each line a service writes is one JSON object whose time the logging add-on's
    parser reads with its own Time_Key and Time_Format."""
    parsers = data_of(
        rendered["logging"], "ConfigMap", _generated(rendered["logging"], "fluent-bit")
    )
    section = parsers["parsers.conf"].split("[PARSER]")[1]
    fields = dict(re.findall(r"^\s*(\w+)\s+(.+?)\s*$", section, re.MULTILINE))
    assert fields["Format"] == "json"
    merge = re.search(r"Merge_Parser\s+(\S+)", parsers["fluent-bit.conf"])
    assert merge is not None and merge.group(1) == fields["Name"]
    strptime = fields["Time_Format"].replace("%L", "%f")
    for deployment in ours(rendered["staging"]).values():
        lines = cluster.pods[deployment["metadata"]["name"]].log.read_text().splitlines()
        records = [json.loads(line) for line in lines if line.startswith("{")]
        assert records and len(records) == len(lines), lines[:5]
        for record in records:
            datetime.strptime(record[fields["Time_Key"]], strptime)


def _generated(objects: list[Obj], prefix: str) -> str:
    return next(
        str(o["metadata"]["name"])
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith(f"{prefix}-")
    )


def test_sigterm_stops_each_service_within_its_grace_period(
    cluster: LocalCluster, rendered: dict[str, list[Obj]]
) -> None:
    for deployment in ours(rendered["staging"]).values():
        pod = cluster.pods[deployment["metadata"]["name"]]
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        pause = pod.container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert cluster.stop(pod, timeout=grace - pause) == 0, pod.log.read_text()[-2000:]


def test_nothing_is_written_outside_the_mounts(cluster: LocalCluster) -> None:
    for pod in cluster.pods.values():
        if Path(pod.log).exists():
            assert "Read-only file system (simulated)" not in pod.log.read_text(), pod.name
