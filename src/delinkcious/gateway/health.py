"""``/healthz`` (alive), ``/readyz`` (dependencies answer) and ``/version`` (which build) on
every process."""

from __future__ import annotations

from typing import Literal

from fastapi import FastAPI

from delinkcious.gateway.responses import JsonResponse
from delinkcious.platform.build import Build
from delinkcious.platform.health import Readiness


def install_health(app: FastAPI, readiness: Readiness, build: Build) -> None:
    @app.get("/healthz", tags=["health"])
    async def healthz() -> JsonResponse:
        return JsonResponse({"status": "ok"})

    @app.get("/readyz", tags=["health"])
    async def readyz(scope: Literal["all", "local"] = "all") -> JsonResponse:
        failures = await readiness.failures(local_only=scope == "local")
        if not failures:
            return JsonResponse({"status": "ready"})
        reasons = "; ".join(f"{name}: {reason}" for name, reason in sorted(failures.items()))
        return JsonResponse(
            {
                "error": {"code": "not_ready", "message": f"not ready: {reasons}"},
                "failing": sorted(failures),
            },
            status_code=503,
        )

    @app.get("/version", tags=["health"])
    async def version() -> JsonResponse:
        return JsonResponse(build.as_json())
