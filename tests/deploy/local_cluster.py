"""Runs rendered manifests as local processes: what can be executed of a cluster here.

Each pod gets an address of its own on the loopback network (as a pod gets its own IP), so
every container listens on the very port its manifest says. A Service name in a variable
is resolved the way kube-proxy would route it: to the selected pod's address and target
port. Our containers run their manifest's command and args, in the environment the
kubelet would give them (the image's ENV, then envFrom, then env), with their mounts
mapped to temporary directories and everything else read-only (an audit hook refuses
writes elsewhere, as a read-only root filesystem would). The backends' images are played
by this machine's PostgreSQL, Redis and NATS binaries, started as those images' entry
points would start them, from the manifests' own args and init scripts.

What is not simulated: the image build, kube-proxy and DNS themselves, the user id
(the interpreter here lives under /root, which no other user may enter), cgroup limits.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import re
import shlex
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from dockerfile_parse import DockerfileParser

from tests.deploy.manifests import BIN, ROOT, Obj, containers, data_of, environment_of, of_kind

READ_ONLY_ROOT = Path(__file__).with_name("read_only_root")
DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "redis": 6379, "nats": 4222}
POSTGRES_BIN = next(Path("/usr/lib/postgresql").glob("*/bin"), Path("/usr/lib/postgresql"))


def _die_with_parent() -> None:
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: no orphan after a crash


def image_environment(stage: str = "runtime") -> dict[str, str]:
    """The ENV of one stage of the Dockerfile, as the container sees it."""
    parser = DockerfileParser(str(ROOT / "Dockerfile"))
    env: dict[str, str] = {}
    current = None
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            words = instruction["value"].split()
            current = words[-1] if len(words) == 3 and words[1].upper() == "AS" else None
        elif instruction["instruction"] == "ENV" and current == stage:
            for pair in shlex.split(instruction["value"]):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


@dataclass
class Pod:
    workload: Obj
    ip: str
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    mounts: dict[str, Path] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.workload["metadata"]["name"])

    @property
    def container(self) -> Obj:
        return containers(self.workload)[0]

    @property
    def log(self) -> Path:
        return self.directory / "log"

    def port(self, name_or_number: str | int) -> int:
        if isinstance(name_or_number, int):
            return name_or_number
        ports = {p["name"]: p["containerPort"] for p in self.container.get("ports", [])}
        return int(ports[name_or_number])

    def local(self, value: str) -> str:
        """A path inside the container, as the directory standing in for its mount."""
        for mount, directory in sorted(self.mounts.items(), key=lambda m: -len(m[0])):
            if value == mount or value.startswith(mount.rstrip("/") + "/"):
                return str(directory) + value[len(mount.rstrip("/")) :]
        return value


class LocalCluster:
    def __init__(self, objects: list[Obj], directory: Path) -> None:
        self.objects = objects
        self.directory = directory
        network = f"127.{random.randrange(100, 250)}.{random.randrange(1, 250)}"
        self.pods: dict[str, Pod] = {}
        for index, workload in enumerate(
            w for w in objects if w["kind"] in ("Deployment", "StatefulSet")
        ):
            # Directories a postgres user can enter, not pytest's (root-only) tmp_path.
            pod_directory = Path(tempfile.mkdtemp(prefix=f"pod-{workload['metadata']['name']}-"))
            pod = Pod(workload, f"{network}.{index + 1}", pod_directory)
            for mount in pod.container.get("volumeMounts", []):
                local = pod_directory / "volumes" / mount["name"]
                local.mkdir(parents=True, exist_ok=True)
                pod.mounts[mount["mountPath"]] = local
            self.pods[pod.name] = pod

    # -- the network ------------------------------------------------------------------------

    def _endpoint(self, service_name: str, port: int | None) -> tuple[str, int]:
        """Where kube-proxy would send a connection to SERVICE:PORT."""
        service = next(
            s for s in of_kind(self.objects, "Service") if s["metadata"]["name"] == service_name
        )
        selector = service["spec"]["selector"]
        pod = next(
            p
            for p in self.pods.values()
            if selector.items() <= p.workload["spec"]["template"]["metadata"]["labels"].items()
        )
        ports = service["spec"]["ports"]
        chosen = next(p for p in ports if port is None or p["port"] == port)
        return pod.ip, pod.port(chosen.get("targetPort", chosen["port"]))

    def resolve(self, value: str) -> str:
        """Service names in URLs replaced by the pod address and port they reach."""
        services = {s["metadata"]["name"] for s in of_kind(self.objects, "Service")}

        def route(match: re.Match[str]) -> str:
            scheme, credentials, host, port = match.groups()
            if host not in services:
                return match.group(0)
            ip, target = self._endpoint(host, int(port) if port else DEFAULT_PORTS[scheme])
            return f"{scheme}://{credentials or ''}{ip}:{target}"

        return re.sub(r"(\w+)://([^@/\s]*@)?([a-z0-9-]+)(?::(\d+))?", route, value)

    # -- starting pods ----------------------------------------------------------------------

    def environment(self, pod: Pod) -> dict[str, str]:
        return environment_of(self.objects, pod.container)

    def start_service(self, pod: Pod) -> None:
        """One of ours: its manifest's command and args, as the kubelet would run them."""
        env = {**image_environment(), **self.environment(pod)}
        env = {key: pod.local(self.resolve(value)) for key, value in env.items()}
        # The image's venv is ours; the rest of its PATH is this machine's.
        env["PATH"] = (
            env["PATH"]
            .replace("/opt/delinkcious/bin", str(BIN))
            .replace("$PATH", os.environ["PATH"])
        )
        writable = [str(directory) for directory in pod.mounts.values()]
        env.update(
            TMPDIR=pod.local("/tmp"),
            PYTHONPATH=str(READ_ONLY_ROOT),
            READ_ONLY_ROOT_WRITABLE=os.pathsep.join(writable),
        )
        args = [pod.ip if arg == "0.0.0.0" else arg for arg in pod.container["args"]]
        self._spawn(pod, [*pod.container["command"], *args], env, cwd=pod.local("/tmp"))

    def start_postgres(self, pod: Pod) -> None:
        """The postgres image's entry point: initdb with the superuser's password, the
        scripts of /docker-entrypoint-initdb.d, then the server."""
        env = self.environment(pod)
        data = pod.directory / "pgdata"
        sockets = pod.directory / "run"
        for path in (data, sockets):
            path.mkdir()
        password = pod.directory / "pwfile"
        password.write_text(env["POSTGRES_PASSWORD"])
        subprocess.run(["chown", "-R", "postgres:postgres", str(pod.directory)], check=True)
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(POSTGRES_BIN / "initdb"),
                "-D",
                str(data),
                "--username=postgres",
                "--auth=scram-sha-256",
                f"--pwfile={password}",
            ],
            check=True,
            capture_output=True,
        )
        port = pod.port("postgres")
        self._spawn(
            pod,
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(POSTGRES_BIN / "postgres"),
                "-D",
                str(data),
                *pod.container.get("args", []),  # the image runs `postgres ARGS`
                "-c",
                f"listen_addresses={pod.ip}",
                "-p",
                str(port),
                "-k",
                str(sockets),
            ],
            {"PATH": os.environ["PATH"]},
        )
        self.wait_for(lambda: _pg_ready(pod.ip, port), f"{pod.name} accepting connections")
        for script in sorted(Path(pod.local("/docker-entrypoint-initdb.d")).glob("*.sh")):
            subprocess.run(
                ["sh", str(script)],
                env={
                    **os.environ,
                    **env,
                    "POSTGRES_USER": "postgres",
                    "PGHOST": pod.ip,
                    "PGPORT": str(port),
                    "PGPASSWORD": env["POSTGRES_PASSWORD"],
                },
                check=True,
                capture_output=True,
            )

    def start_backend(self, pod: Pod, binary: str, listen: list[str]) -> None:
        """Redis or NATS: the container's own args, its volumes mapped, on the pod's address."""
        env = self.environment(pod)
        args = []
        for arg in pod.container["args"]:
            for key, value in env.items():
                arg = arg.replace(f"$({key})", value)
            args.append(pod.local(arg))
        self._spawn(pod, [binary, *args, *listen], {"PATH": os.environ["PATH"]})

    def mount_config_maps(self) -> None:
        """ConfigMap volumes, written where the container would see them."""
        for pod in self.pods.values():
            for volume in pod.workload["spec"]["template"]["spec"].get("volumes", []):
                if "configMap" in volume:
                    directory = next(
                        local
                        for path, local in pod.mounts.items()
                        if any(
                            m["name"] == volume["name"] and m["mountPath"] == path
                            for m in pod.container["volumeMounts"]
                        )
                    )
                    for key, text in data_of(
                        self.objects, "ConfigMap", volume["configMap"]["name"]
                    ).items():
                        (directory / key).write_text(text)

    def _spawn(
        self, pod: Pod, argv: list[str], env: dict[str, str], cwd: str | None = None
    ) -> None:
        with pod.log.open("ab") as log:
            pod.process = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )

    # -- probes -----------------------------------------------------------------------------

    def wait_for(self, check: Any, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            for pod in self.pods.values():
                if pod.process is not None and pod.process.poll() is not None:
                    raise AssertionError(f"{pod.name} exited:\n{pod.log.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"not {what} within {timeout} s")
            time.sleep(0.1)

    def probe(self, pod: Pod, kind: str) -> bool:
        """The container's own probe, at its own path and port."""
        get = pod.container[kind]["httpGet"]
        try:
            url = f"http://{pod.ip}:{pod.port(get['port'])}{get['path']}"
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, pod: Pod, timeout: float) -> int | None:
        if pod.process is None or pod.process.poll() is not None:
            return pod.process.returncode if pod.process else None
        pod.process.send_signal(signal.SIGTERM)
        try:
            return pod.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pod.process.kill()
            pod.process.wait()
            return None

    def stop_all(self) -> None:
        for pod in self.pods.values():
            with contextlib.suppress(Exception):
                self.stop(pod, 10)


def _pg_ready(host: str, port: int) -> bool:
    done = subprocess.run(
        [str(POSTGRES_BIN / "pg_isready"), "-h", host, "-p", str(port)], capture_output=True
    )
    return done.returncode == 0
