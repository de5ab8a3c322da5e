"""The one middleware chain of every service, in both shapes:
``tracing(metrics(logging(faults(core))))``.

Faults sit innermost so the injected latency and errors are seen by every other layer,
as a real slow dependency would be; tracing is outermost so its span covers them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from delinkcious.platform.middleware.base import Around, wrap
from delinkcious.platform.middleware.faults import Faults, faults_middleware
from delinkcious.platform.middleware.logging import logging_middleware
from delinkcious.platform.middleware.metrics import metrics_middleware
from delinkcious.platform.middleware.tracing import tracing_middleware

if TYPE_CHECKING:
    from typing_extensions import TypeForm

P = TypeVar("P")


class Chain:
    """Builds each ``Around`` once; ``apply`` wraps a service's core in all of them."""

    def __init__(self, version: str, faults: Faults, enabled: bool = True) -> None:
        self._layers: list[Around] = []
        if faults:
            self._layers.append(faults_middleware(faults))
        if enabled:
            self._layers += [
                logging_middleware(),
                metrics_middleware(version),
                tracing_middleware(),
            ]

    def apply(self, protocol: TypeForm[P], service: str, core: P) -> P:
        return wrap(protocol, service, core, *self._layers) if self._layers else core
