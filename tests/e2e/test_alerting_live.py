"""Alerting, live: real Delinkcious → real Prometheus → real Alertmanager → a webhook.

``delinkcious up`` runs with a latency fault on ``links.add_link`` (6 s a call); the real
Prometheus scrapes it with the repository's scrape config and evaluates a copy of the
repository's rules in which every range and every ``for`` is shortened (rewritten by code
from the real file, thresholds untouched); the real Alertmanager routes with a copy of the
repository's config whose receivers point at a webhook server this test runs. Then:

- ``SlowAddLink`` fires from the real latency and reaches the ``pager`` receiver;
- synthetic alerts posted to Alertmanager's API show the rest of the routing tree:
  a ticket reaches ``tickets``; alerts are grouped per alert, namespace and service; while a
  service is down (``ServiceDown``) its other alerts are held back, but not the volumes; a
  paging volume alert hides its ticket. Both shapes of alert: without a ``namespace`` (a
  local Prometheus) and with one (Kubernetes, where one Prometheus may scrape staging and
  production: neither environment's alerts are grouped with, or held back by, the other's).

Every process listens on 127.0.0.1 on its own free port, with its own data directory, and
is stopped at the end; nothing is sent off this machine. About 30 s.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.conftest import CHECKER_ENV, Server, free_port, register_and_login

OBSERVABILITY = Path(__file__).resolve().parents[2] / "deploy" / "observability"
RULES = OBSERVABILITY / "rules" / "delinkcious.rules.yml"
PROMETHEUS_CONFIG = OBSERVABILITY / "prometheus.yml"
ALERTMANAGER_CONFIG = OBSERVABILITY / "alertmanager.yml"

FAULTS = "links.add_link:latency=6s"
STAGING, PRODUCTION = "delinkcious-staging", "delinkcious-production"
RANGE = "20s"  # every [5m] / [15m] of the rules (20 scrapes at 1 s)
FOR = "5s"  # every `for:` of the rules
SLOW_ALERT_WITHIN = 60.0  # seconds from the first slow call to the page at the webhook


# --- shortened copies of the repository's configuration ----------------------------------------


def shortened_rules(text: str) -> str:
    """The rules with every range selector ``[<n><unit>]`` → RANGE and every ``for`` → FOR.

    Thresholds are untouched: SlowAddLink still needs a median over 5 s.
    """
    document = yaml.safe_load(text)
    for group in document["groups"]:
        for rule in group["rules"]:
            rule["expr"], count = re.subn(r"\[\d+[smhdwy]\]", f"[{RANGE}]", rule["expr"])
            if rule.get("alert") in {"SlowAddLink", "HighErrorRate", "LinkChecksFailing"}:
                assert count, f"{rule['alert']}: no range selector shortened"
            if "for" in rule:
                rule["for"] = FOR
    return yaml.safe_dump(document, sort_keys=False)


def prometheus_config(rules: Path, target: str, alertmanager: str) -> str:
    """prometheus.yml with 1 s scrapes and evaluations, the rules copy, our Alertmanager,
    and the embedded target group (with its labels) pointed at the running server."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"] = {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
    }
    config["rule_files"] = [str(rules)]
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager]}]}]
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "delinkcious"]
    (group,) = job["static_configs"]
    assert group["labels"] == {"service": "delinkcious"}
    group["targets"] = [target]
    return yaml.safe_dump(config, sort_keys=False)


def alertmanager_config(webhook: str) -> str:
    """alertmanager.yml with each receiver's webhook at ``<webhook>/<receiver>`` and waits
    of a second; routes, grouping and inhibition as in the repository."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            hook["url"] = f"{webhook}/{receiver['name']}"

    def quick(route: dict[str, Any]) -> None:
        route.update(group_wait="1s", group_interval="1s", repeat_interval="1h")
        for child in route.get("routes", []):
            quick(child)

    quick(config["route"])
    return yaml.safe_dump(config, sort_keys=False)


# --- the webhook receiver ----------------------------------------------------------------------


@dataclass
class Delivery:
    path: str  # the receiver the URL was configured for
    payload: dict[str, Any]
    alert: dict[str, Any]


@dataclass
class Webhook:
    """Alertmanager's notifications, one ``Delivery`` per alert, in arrival order."""

    deliveries: list[Delivery] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def record(self, path: str, payload: dict[str, Any]) -> None:
        with self.arrived:
            for alert in payload["alerts"]:
                self.deliveries.append(Delivery(path, payload, alert))
            self.arrived.notify_all()

    def wait_for(self, wanted: Callable[[Delivery], bool], within: float, what: str) -> Delivery:
        deadline = time.monotonic() + within
        with self.arrived:
            while True:
                found = [delivery for delivery in self.deliveries if wanted(delivery)]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"{what} not delivered within {within:.0f} s; got {self.summary()}")
                self.arrived.wait(left)

    def find(self, wanted: Callable[[Delivery], bool]) -> list[Delivery]:
        with self.arrived:
            return [delivery for delivery in self.deliveries if wanted(delivery)]

    def summary(self) -> list[tuple[str, ...]]:
        return [
            (d.path, *(d.alert["labels"].get(label, "") for label in SUMMARY_LABELS),
             d.alert["status"])
            for d in self.deliveries
        ]  # fmt: skip


SUMMARY_LABELS = ("alertname", "namespace", "service", "backend", "severity")


@contextlib.contextmanager
def webhook_server() -> Iterator[tuple[Webhook, str]]:
    webhook = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            webhook.record(self.path.strip("/"), json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield webhook, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def alert_is(
    name: str, service: str | None = None, *, namespace: str | None = None, **labels: str
) -> Callable[[Delivery], bool]:
    """The alert ``name`` with exactly this service and namespace (None: without the label)
    and these other labels."""
    wanted = {"alertname": name, "service": service, "namespace": namespace, **labels}
    return lambda d: all(d.alert["labels"].get(key) == value for key, value in wanted.items())


# --- the daemons -------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Stop the daemon if pytest is killed before it can stop it."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class Daemon:
    name: str
    argv: list[str]
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Daemon:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
            )
        return self

    def ready(self, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        with httpx.Client(trust_env=False, timeout=2) as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    if "address already in use" in self.tail():
                        raise PortTaken(self.port)
                    pytest.fail(f"{self.name} exited:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.url}/-/ready").status_code == 200:
                        return
                time.sleep(0.1)
        pytest.fail(f"{self.name} not ready within {within} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class PortTaken(Exception):
    """The free port picked for a daemon was taken before it could bind it."""


def start_daemon(cleanup: contextlib.ExitStack, make: Callable[[int], Daemon]) -> Daemon:
    """``make(port)`` started and ready, on another free port if the first one was taken
    meanwhile (other tests pick free ports in the same range)."""
    for _ in range(3):
        daemon = make(free_port())
        cleanup.callback(daemon.stop)
        daemon.start()
        try:
            daemon.ready()
        except PortTaken:
            continue
        return daemon
    pytest.fail("no free port for a daemon after 3 tries")


def executable(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run make test, which installs it")
    return path


@dataclass
class Stack:
    server: Server
    prometheus: Daemon
    alertmanager: Daemon
    webhook: Webhook


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    prometheus_bin = executable("prometheus")
    alertmanager_bin = executable("prometheus-alertmanager")
    with webhook_server() as (webhook, webhook_url), contextlib.ExitStack() as cleanup:
        server = Server(tmp_path / "delinkcious", env={**CHECKER_ENV, "DELINKCIOUS_FAULTS": FAULTS})
        (tmp_path / "delinkcious").mkdir()

        cleanup.callback(server_stop, server)
        server.start()

        (tmp_path / "alertmanager.yml").write_text(alertmanager_config(webhook_url))
        alertmanager = start_daemon(
            cleanup,
            lambda port: Daemon(
                "prometheus-alertmanager",
                [
                    alertmanager_bin,
                    f"--config.file={tmp_path / 'alertmanager.yml'}",
                    f"--storage.path={tmp_path / 'alertmanager-data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--cluster.listen-address=",  # no gossip port: a single, private instance
                ],
                port,
                tmp_path / f"alertmanager-{port}.log",
            ),
        )
        (tmp_path / "rules.yml").write_text(shortened_rules(RULES.read_text()))
        (tmp_path / "prometheus.yml").write_text(
            prometheus_config(
                tmp_path / "rules.yml", f"127.0.0.1:{server.port}", f"127.0.0.1:{alertmanager.port}"
            )
        )
        prometheus = start_daemon(
            cleanup,
            lambda port: Daemon(
                "prometheus",
                [
                    prometheus_bin,
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                port,
                tmp_path / f"prometheus-{port}.log",
            ),
        )
        try:
            yield Stack(server, prometheus, alertmanager, webhook)
        finally:
            print("--- prometheus\n" + prometheus.tail(15))
            print("--- alertmanager\n" + alertmanager.tail(15))


def server_stop(server: Server) -> None:
    if server.process is not None:
        server.stop()


# --- traffic -------------------------------------------------------------------------------------


@contextlib.contextmanager
def saving_links(base_url: str, headers: dict[str, str], workers: int = 3) -> Iterator[list[int]]:
    """``workers`` clients saving links back to back (6 s each under the fault), staggered
    by 2 s so that completions, and so the histogram's increases, come every couple of
    seconds. Yields the status codes as they come."""
    statuses: list[int] = []
    stop = threading.Event()

    def save(index: int) -> None:
        if stop.wait(2 * index):
            return
        with httpx.Client(base_url=base_url, timeout=30, trust_env=False) as client:
            count = 0
            while not stop.is_set():
                try:
                    reply = client.post(
                        "/v1/links",
                        headers=headers,
                        json={"url": f"http://127.0.0.1:9/slow/{index}/{count}", "title": "slow"},
                    )
                except httpx.HTTPError:
                    return  # the server is being stopped
                statuses.append(reply.status_code)
                count += 1

    threads = [threading.Thread(target=save, args=(i,), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    try:
        yield statuses
    finally:
        stop.set()


def post_alerts(alertmanager: Daemon, alerts: list[dict[str, str]]) -> None:
    """Synthetic alerts, as Prometheus would send them, straight to Alertmanager's API."""
    now = datetime.now(UTC).isoformat()
    body = [{"labels": labels, "annotations": {"summary": "synthetic"}, "startsAt": now}
            for labels in alerts]  # fmt: skip
    reply = httpx.post(f"{alertmanager.url}/api/v2/alerts", json=body, trust_env=False)
    assert reply.status_code == 200, reply.text


def query(prometheus: Daemon, promql: str) -> list[dict[str, Any]]:
    reply = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": promql}, trust_env=False)
    assert reply.status_code == 200, reply.text
    return reply.json()["data"]["result"]  # type: ignore[no-any-return]


def scraped_target(prometheus: Daemon, within: float = 15.0) -> dict[str, Any]:
    """The delinkcious scrape target once Prometheus has tried it (health up or down).

    Prometheus applies discovered targets every 5 s, so the list starts out empty.
    """
    deadline = time.monotonic() + within
    target: dict[str, Any] = {"health": "unknown", "lastError": "no target yet"}
    while time.monotonic() < deadline:
        reply = httpx.get(f"{prometheus.url}/api/v1/targets", trust_env=False)
        for candidate in reply.json()["data"]["activeTargets"]:
            if candidate["labels"]["job"] == "delinkcious":
                target = candidate
        if target["health"] != "unknown":
            break
        time.sleep(0.2)
    return target


# --- the test ------------------------------------------------------------------------------------


def test_slow_add_link_pages_and_alertmanager_routes_groups_and_inhibits(stack: Stack) -> None:
    started = time.monotonic()
    webhook, alertmanager = stack.webhook, stack.alertmanager
    with httpx.Client(base_url=stack.server.url, timeout=10, trust_env=False) as api:
        headers = register_and_login(api)

    with saving_links(stack.server.url, headers) as statuses:
        # Routing and inhibition, with synthetic alerts while the slow calls run.
        post_alerts(
            alertmanager,
            [
                # --- local shape (prometheus.yml): no namespace label
                # A ticket goes to the tickets receiver.
                {"alertname": "OutboxBacklog", "severity": "ticket", "service": "routed"},
                # Two instances of one alert on one service: one notification (group_by).
                {"alertname": "HighErrorRate", "severity": "page", "service": "grouped",
                 "instance": "10.0.0.1:5001"},
                {"alertname": "HighErrorRate", "severity": "page", "service": "grouped",
                 "instance": "10.0.0.2:5001"},
                # A service that is down: its other alerts are held back.
                {"alertname": "ServiceDown", "severity": "page", "service": "downed"},
                {"alertname": "HighErrorRate", "severity": "page", "service": "downed"},
                {"alertname": "OutboxBacklog", "severity": "ticket", "service": "downed"},
                # The same alert for another service is not held back (equal: service).
                {"alertname": "HighErrorRate", "severity": "page", "service": "neighbour"},
                # --- Kubernetes shape: one Prometheus, two environments (namespaces)
                # users is down in staging: staging's users alerts are held back, not
                # production's (equal: namespace), nor staging's volumes.
                {"alertname": "ServiceDown", "severity": "page", "service": "users",
                 "namespace": STAGING},
                {"alertname": "HighErrorRate", "severity": "page", "service": "users",
                 "namespace": STAGING},
                {"alertname": "HighErrorRate", "severity": "page", "service": "users",
                 "namespace": PRODUCTION},
                {"alertname": "VolumeFillingUp", "severity": "page", "backend": "postgres",
                 "namespace": STAGING, "persistentvolumeclaim": "data-postgres-0"},
                # redis' volume at 95 % in production: the page hides the 75 % ticket of
                # the same claim, not the ticket of staging's claim of the same name.
                {"alertname": "VolumeFillingUp", "severity": "page", "backend": "redis",
                 "namespace": PRODUCTION, "persistentvolumeclaim": "data-redis-0"},
                {"alertname": "VolumeFillingUp", "severity": "ticket", "backend": "redis",
                 "namespace": PRODUCTION, "persistentvolumeclaim": "data-redis-0"},
                {"alertname": "VolumeFillingUp", "severity": "ticket", "backend": "redis",
                 "namespace": STAGING, "persistentvolumeclaim": "data-redis-0"},
            ],
        )  # fmt: skip
        ticket = webhook.wait_for(alert_is("OutboxBacklog", "routed"), 15, "the ticket")
        assert (ticket.path, ticket.payload["receiver"]) == ("tickets", "tickets")
        grouped = webhook.wait_for(alert_is("HighErrorRate", "grouped"), 15, "a group")
        # Without a namespace label the group is what it was before namespaces: alert, service.
        assert grouped.payload["groupLabels"] == {
            "alertname": "HighErrorRate",
            "service": "grouped",
        }
        assert sorted(a["labels"]["instance"] for a in grouped.payload["alerts"]) == [
            "10.0.0.1:5001",
            "10.0.0.2:5001",
        ]
        down = webhook.wait_for(alert_is("ServiceDown", "downed"), 15, "a down service")
        assert (down.path, down.payload["receiver"]) == ("pager", "pager")
        webhook.wait_for(alert_is("HighErrorRate", "neighbour"), 15, "another service's alert")

        webhook.wait_for(
            alert_is("ServiceDown", "users", namespace=STAGING), 15, "staging's ServiceDown"
        )
        production = webhook.wait_for(
            alert_is("HighErrorRate", "users", namespace=PRODUCTION),
            15,
            "production's alert while the same service is down in staging",
        )
        assert production.payload["groupLabels"] == {
            "alertname": "HighErrorRate",
            "namespace": PRODUCTION,
            "service": "users",
        }
        assert [a["labels"]["namespace"] for a in production.payload["alerts"]] == [PRODUCTION]
        staging_volume = webhook.wait_for(
            alert_is("VolumeFillingUp", namespace=STAGING, backend="postgres"),
            15,
            "the volume of a namespace where a service is down",
        )
        assert (staging_volume.path, staging_volume.payload["receiver"]) == ("pager", "pager")
        assert staging_volume.payload["groupLabels"] == {
            "alertname": "VolumeFillingUp",
            "namespace": STAGING,
            "backend": "postgres",
        }
        webhook.wait_for(
            alert_is("VolumeFillingUp", namespace=PRODUCTION, backend="redis", severity="page"),
            15,
            "the full volume's page",
        )
        other_ticket = webhook.wait_for(
            alert_is("VolumeFillingUp", namespace=STAGING, backend="redis", severity="ticket"),
            15,
            "the ticket of the same claim in another namespace",
        )
        assert other_ticket.path == "tickets"

        time.sleep(3)  # three group intervals: time enough for anything held back to leak
        assert webhook.find(alert_is("HighErrorRate", "downed")) == []
        assert webhook.find(alert_is("OutboxBacklog", "downed")) == []
        assert webhook.find(alert_is("HighErrorRate", "users", namespace=STAGING)) == []
        full = webhook.find(alert_is("VolumeFillingUp", namespace=PRODUCTION, backend="redis"))
        assert [delivery.alert["labels"]["severity"] for delivery in full] == ["page"]
        held = httpx.get(
            f"{alertmanager.url}/api/v2/alerts",
            params={"inhibited": "true"},
            trust_env=False,
        ).json()
        suppressed = {
            tuple(a["labels"].get(label, "") for label in SUMMARY_LABELS)
            for a in held
            if a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]
        }
        assert suppressed == {
            ("HighErrorRate", "", "downed", "", "page"),
            ("OutboxBacklog", "", "downed", "", "ticket"),
            ("HighErrorRate", STAGING, "users", "", "page"),
            ("VolumeFillingUp", PRODUCTION, "", "redis", "ticket"),
        }

        # The real thing: the add_link fault makes the median latency 6 s → SlowAddLink.
        target = scraped_target(stack.prometheus)
        assert target["health"] == "up", f"Prometheus cannot scrape /metrics: {target}"
        slow = webhook.wait_for(
            lambda d: (
                d.alert["labels"].get("alertname") == "SlowAddLink"
                and d.alert["status"] == "firing"
            ),
            SLOW_ALERT_WITHIN - (time.monotonic() - started),
            "SlowAddLink",
        )
        assert statuses and set(statuses) == {201}, statuses

    assert (slow.path, slow.payload["receiver"]) == ("pager", "pager")
    assert slow.alert["labels"]["severity"] == "page"
    assert slow.alert["labels"]["service"] == "links"
    assert slow.payload["groupLabels"] == {"alertname": "SlowAddLink", "service": "links"}
    assert "add_link" in slow.alert["annotations"]["summary"]

    # Nothing else real paged: the running system was up all along.
    assert webhook.find(alert_is("ServiceDown", "delinkcious")) == []
    # Everything delivered went where its severity says, the real alerts included.
    for delivery in webhook.find(lambda d: True):
        expected = {"page": "pager", "ticket": "tickets"}[delivery.alert["labels"]["severity"]]
        assert delivery.path == expected, delivery.alert["labels"]

    # The scrape config's labels: one target, service="delinkcious", up; the service
    # metrics keep their own service label (honor_labels), none renamed exported_service.
    (up,) = query(stack.prometheus, 'up{job="delinkcious"}')
    assert up["metric"]["service"] == "delinkcious" and up["value"][1] == "1"
    assert query(stack.prometheus, '{job="delinkcious", exported_service!=""}') == []
    services = query(stack.prometheus, "count by (service) (delinkcious_requests_total)")
    assert {"links", "users"} <= {series["metric"]["service"] for series in services}
    assert time.monotonic() - started < 90
