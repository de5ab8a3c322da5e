"""``setup_tracing`` in a process of its own (the global provider can be set once per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap


def _run(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_console_exporter_prints_every_span_by_exit() -> None:
    done = _run(
        """
        import asyncio
        from typing import Protocol
        from delinkcious.platform.middleware import wrap
        from delinkcious.platform.middleware.tracing import tracing_middleware
        from delinkcious.platform.tracing import setup_tracing, shutdown_tracing

        class Echo(Protocol):
            async def echo(self, word: str) -> str: ...

        class Core:
            async def echo(self, word: str) -> str:
                return word

        echo = wrap(Echo, "echo", Core(), tracing_middleware())  # built before the setup
        assert setup_tracing("echo", default_exporter="console", version="9.9.9") is not None
        assert asyncio.run(echo.echo("hi")) == "hi"
        shutdown_tracing()  # flushes the batch: the span is printed before the exit
        """,
        OTEL_BSP_SCHEDULE_DELAY="60000",
    )
    assert done.returncode == 0, done.stderr
    span = json.loads(done.stdout)
    assert span["name"] == "echo.echo"
    assert span["kind"] == "SpanKind.INTERNAL"
    assert span["resource"]["attributes"]["service.name"] == "echo"
    assert span["resource"]["attributes"]["service.version"] == "9.9.9"


def test_exporter_none_imports_no_sdk_at_all() -> None:
    done = _run(
        """
        import asyncio, sys
        from delinkcious.platform import traced_bus
        from delinkcious.platform.tracing import setup_tracing, shutdown_tracing
        assert setup_tracing("links") is None
        shutdown_tracing()
        print(sorted(name for name in sys.modules if name.startswith("opentelemetry.sdk")))
        """,
        OTEL_TRACES_EXPORTER="none",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_an_unknown_exporter_fails_with_the_variable_named() -> None:
    done = _run(
        """
        from delinkcious.platform.tracing import setup_tracing
        setup_tracing("links")
        """,
        OTEL_TRACES_EXPORTER="jaeger",
    )
    assert done.returncode != 0
    assert "OTEL_TRACES_EXPORTER: unknown exporter 'jaeger'" in done.stderr
