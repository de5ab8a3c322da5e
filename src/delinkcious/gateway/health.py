"""``/healthz`` (alive) and ``/readyz`` (dependencies answer) on every service process."""

from __future__ import annotations

from fastapi import FastAPI

from delinkcious.gateway.responses import JsonResponse
from delinkcious.platform.health import Readiness


def install_health(app: FastAPI, readiness: Readiness) -> None:
    @app.get("/healthz", tags=["health"])
    async def healthz() -> JsonResponse:
        return JsonResponse({"status": "ok"})

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JsonResponse:
        failures = await readiness.failures()
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
