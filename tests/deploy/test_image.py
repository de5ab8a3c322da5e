"""The image, as far as this machine can check it without a Docker engine: the Dockerfile's
promises (non-root numeric user, no compiler, labels, the manifests' command and port),
its build context, and its build stage's own RUN steps executed in a copy of that context,
which must install exactly the locked packages."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from docker.utils.build import exclude_paths
from dockerfile_parse import DockerfileParser
from packaging.markers import Marker

from tests.deploy.manifests import ROOT, Obj, containers, ours

Stage = list[Mapping[str, Any]]


def stages() -> dict[str, Stage]:
    """The Dockerfile's instructions by stage name (the unnamed last one as "default")."""
    result: dict[str, Stage] = {}
    current: Stage = []
    for instruction in DockerfileParser(str(ROOT / "Dockerfile")).structure:
        if instruction["instruction"] == "FROM":
            words = instruction["value"].split()
            current = []
            result[words[2] if len(words) == 3 else "default"] = current
        current.append(instruction)
    return result


def values(stage: Stage, name: str) -> list[str]:
    return [str(i["value"]) for i in stage if i["instruction"] == name]


def environment(stage: Stage) -> dict[str, str]:
    return dict(pair.split("=", 1) for value in values(stage, "ENV") for pair in shlex.split(value))


def test_the_default_target_is_the_runtime_image() -> None:
    found = stages()
    assert values(found["default"], "FROM") == ["runtime"]
    assert len(found["default"]) == 1
    assert values(found["dev"], "FROM") == ["runtime AS dev"]


def test_the_runtime_image_runs_as_a_numeric_user_without_compilers() -> None:
    runtime = stages()["runtime"]
    (user,) = values(runtime, "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit()
    assert values(runtime, "FROM") == ["${PYTHON_IMAGE} AS runtime"]
    assert not values(runtime, "RUN"), "the runtime stage installs nothing: no compiler"
    assert values(runtime, "COPY") == ["--from=build /opt/delinkcious /opt/delinkcious"]
    env = environment(runtime)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"].startswith("/tmp") and env["DELINKCIOUS_DATA_DIR"].startswith("/tmp")
    labels = " ".join(values(runtime, "LABEL"))
    for label in ("org.opencontainers.image.version", "org.opencontainers.image.revision"):
        assert label in labels


def test_the_base_image_is_slim_and_installs_are_locked_wheels() -> None:
    """A slim base carries no compiler, and wheels-only installs never need one."""
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert base is not None and base.group(1).endswith("-slim-bookworm")
    installs = [run for run in values(stages()["build"], "RUN") if " install " in run]
    assert installs
    for run in installs:
        for command in run.split("&&"):
            if "install" in command and "-r requirements/" in command:
                assert "--require-hashes" in command and "--only-binary=:all:" in command


def test_the_manifests_run_the_image_as_it_is_built(rendered: dict[str, list[Obj]]) -> None:
    runtime = stages()["runtime"]
    (entrypoint,) = values(runtime, "ENTRYPOINT")
    (exposed,) = values(runtime, "EXPOSE")
    for deployment in ours(rendered["production"]).values():
        (server,) = containers(deployment)
        assert server["command"] == json.loads(entrypoint)
        assert [p["containerPort"] for p in server["ports"]] == [int(exposed)]
        mounts = {mount["mountPath"] for mount in server["volumeMounts"]}
        assert "/tmp" in mounts  # where HOME and the data directory point


def build_context() -> set[str]:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return set(exclude_paths(str(ROOT), patterns))


def test_the_build_context_holds_what_the_build_copies_and_nothing_secret() -> None:
    context = build_context()
    tops = {path.split("/")[0] for path in context}
    assert tops == {
        "Dockerfile",
        ".dockerignore",
        "requirements",
        "pyproject.toml",
        "README.md",
        "src",
    }
    assert not any(path.endswith(".env") or "__pycache__" in path for path in context)
    for instruction in values(stages()["build"], "COPY"):
        source = instruction.split()[0]
        assert source.rstrip("/") in context, source


def test_the_build_steps_install_exactly_the_lock(tmp_path: Path) -> None:
    """The build stage's RUN lines, run here in a copy of the build context (only the pip
    cache is kept, to spare the download): the package builds, `delinkcious` runs, and the
    venv holds the locked versions and nothing else."""
    build = stages()["build"]
    context = tmp_path / "src"
    for path in sorted(build_context()):
        source = ROOT / path
        if source.is_file():
            (context / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, context / path)
    env = environment(build)
    places = {name: str(tmp_path / name.lower()) for name in ("VENV", "TOOLS", "WHEELS")}
    # The interpreter the image's `python` stands for: the one this venv was made from.
    base = Path(os.path.realpath(sys.executable)).parent
    run_env = {
        "PATH": f"{base}:{os.environ['PATH']}",
        **{key: value for key, value in env.items() if key not in places},
        **places,
        "PIP_NO_CACHE_DIR": "0",
    }
    assert (base / "python").exists() or (base / "python3").exists()
    if not (base / "python").exists():
        (tmp_path / "bin").mkdir()
        (tmp_path / "bin" / "python").symlink_to(base / "python3")
        run_env["PATH"] = f"{tmp_path / 'bin'}:{run_env['PATH']}"
    for run in values(build, "RUN"):
        done = subprocess.run(
            ["sh", "-c", run],
            cwd=context,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"RUN {run}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    venv = Path(places["VENV"])
    freeze = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "list",
            "--format=freeze",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {
        name.lower().replace("_", "-"): version
        for name, version in (line.split("==") for line in freeze.splitlines())
    }
    locked = {
        name.lower(): version
        for name, version, marker in re.findall(
            r"^([A-Za-z0-9_.-]+)==(\S+)(?: ; (.*?))? \\$",
            (ROOT / "requirements" / "runtime.txt").read_text(),
            re.MULTILINE,
        )
        if not marker or Marker(marker).evaluate()
    }
    assert installed.pop("delinkcious") is not None
    assert installed == locked
    assert (
        subprocess.run(
            [str(venv / "bin" / "delinkcious"), "--version"], capture_output=True, check=True
        ).returncode
        == 0
    )
