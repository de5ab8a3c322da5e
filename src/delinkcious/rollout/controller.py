"""Drives one rollout to its end, one idempotent step at a time, saving after each.

Every step can run again without harm (processes already asked for are not asked for
twice, a route already in force is written again), so a controller that was killed is
simply run again (``delinkcious rollout resume``) and carries on from the step saved.

The four strategies of the book's chapter:

- **recreate**: stop the old processes, start the new ones, route to them (an outage,
  by the strategy's nature: it is measured and recorded);
- **rolling**: ``max_surge`` new replicas at a time, each admitted to the route once
  ready, then ``max_surge + max_unavailable`` old ones taken out of the route and stopped;
- **blue-green**: green started beside blue as the route's canary at weight 0, smoke-
  tested through the ``Delinkcious-Canary: always`` override, then all traffic switched
  at once (one route write); blue stays warm (``undo`` switches back at once) until the
  scale-down delay has passed, then retires;
- **canary**: a canary replica at each weight of ``steps`` in turn, each held for
  ``pause`` seconds, then analysed (``analysis.py``): a pass goes on, a failure aborts
  (traffic back to stable, canary retired, no route left behind), an inconclusive result
  waits for traffic until ``deadline``, then aborts; at 100 % the new release becomes
  the stable, with as many replicas as before.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence

from delinkcious.rollout import analysis
from delinkcious.rollout.cluster import LocalCluster
from delinkcious.rollout.state import Phase, Rollout, Store, Strategy, now

Say = Callable[[str], None]

# What a person may ask of a running rollout, and what each means.
PROMOTE, PROMOTE_FULL, ABORT, UNDO = "promote", "promote-full", "abort", "undo"
ROUTED = frozenset({"links", "users", "social_graph", "news"})  # what the gateway calls


class Aborted(Exception):
    """The rollout cannot go on: its traffic goes back to the old release."""

    def __init__(self, why: str, phase: Phase = Phase.ABORTED) -> None:
        super().__init__(why)
        self.phase = phase


class Controller:
    def __init__(self, cluster: LocalCluster, store: Store, say: Say) -> None:
        self.cluster = cluster
        self.store = store
        self.say = say

    # -- the loop ---------------------------------------------------------------------------

    async def drive(self) -> Rollout:
        """Run the current rollout's remaining steps; returns it as it ended or paused."""
        history = self.store.load()
        rollout = history.current
        if rollout is None:
            raise RuntimeError("no rollout in progress")
        plan = self.plan(rollout)
        try:
            while rollout.step < len(plan) and rollout.phase.active:
                await plan[rollout.step](rollout)
                rollout = self._refresh(rollout)
                if rollout.phase.active:
                    rollout.step += 1
                    self._save(rollout)
        except Aborted as exc:
            await self._retreat(rollout, str(exc), exc.phase)
        if rollout.phase.active:
            rollout.phase = Phase.SUCCEEDED
            rollout.ended = now()
            self._note(rollout, f"succeeded: {rollout.service} runs {rollout.target.version}")
            self._save(rollout)
        return rollout

    def plan(self, rollout: Rollout) -> list[Callable[[Rollout], Awaitable[None]]]:
        if rollout.strategy is Strategy.RECREATE:
            return [self._stop_old, self._start_all_new, self._route_new]
        if rollout.strategy is Strategy.ROLLING:
            return [self._roll]
        if rollout.strategy is Strategy.BLUE_GREEN:
            return [
                self._start_all_new,
                self._preview,
                self._smoke,
                self._switch,
                self._keep_warm,
                self._retire_old,
            ]
        steps: list[Callable[[Rollout], Awaitable[None]]] = [self._start_canary]
        for weight in rollout.params.steps:
            steps += [self._weigh(weight), self._hold, self._analyse]
        return [*steps, self._promote]

    # -- steps -------------------------------------------------------------------------------

    async def _stop_old(self, rollout: Rollout) -> None:
        self._note(rollout, f"stopping {', '.join(rollout.old)} (recreate: an outage begins)")
        self.cluster.stop(rollout.old)

    async def _start_all_new(self, rollout: Rollout) -> None:
        names = [f"{rollout.service}-r{rollout.id}-{i}" for i in range(rollout.params.replicas)]
        await self._start(rollout, names)

    async def _start(self, rollout: Rollout, names: list[str]) -> None:
        rollout.new = list(dict.fromkeys([*rollout.new, *names]))
        self._save(rollout)
        self.cluster.start(rollout.service, rollout.target, names)
        await self.cluster.ready(names, rollout.target.version)
        self._note(rollout, f"{', '.join(names)} ready ({rollout.target.version})")

    async def _route_new(self, rollout: Rollout) -> None:
        await self._set_route(rollout, stable=rollout.new)
        self._note(rollout, "traffic on the new release")

    async def _roll(self, rollout: Rollout) -> None:
        params = rollout.params
        wanted = params.replicas
        while True:
            old = [name for name in rollout.old if name in self._running()]
            new = [name for name in rollout.new if name in self._running()]
            if not old and len(new) >= wanted:
                return
            if len(new) < wanted and (params.max_surge > 0 or not old):
                batch = min(max(params.max_surge, 1), wanted - len(new))
                names = [f"{rollout.service}-r{rollout.id}-{len(new) + i}" for i in range(batch)]
                await self._start(rollout, names)
                new = [*new, *names]
                await self._set_route(rollout, stable=[*old, *new])
            if old:
                room = params.max_surge + params.max_unavailable
                going = old[: max(1, room)] if len(new) or params.max_unavailable else []
                if not going:
                    raise Aborted("max_surge and max_unavailable are both 0: nothing can move")
                staying = [name for name in old if name not in going]
                if staying or new:  # else the route keeps the old (an outage: max_surge 0)
                    await self._set_route(rollout, stable=[*staying, *new])
                await asyncio.sleep(1.0)  # calls in flight on them finish
                self.cluster.stop(going)
                self._note(rollout, f"replaced {', '.join(going)}")
                self._save(rollout)

    async def _preview(self, rollout: Rollout) -> None:
        await self._set_route(rollout, stable=rollout.old, canary=rollout.new, weight=0)
        self._note(rollout, "green on the route at weight 0: only the tester's header reaches it")

    async def _smoke(self, rollout: Rollout) -> None:
        if not rollout.params.smoke:
            return
        self._note(rollout, "smoke test of green through Delinkcious-Canary: always")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "delinkcious.cli.main",
            "smoke",
            "--url",
            self.cluster.gateway,
            "--canary",
            "always",
            "--timeout",
            "30",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        if process.returncode != 0:
            raise Aborted(f"green failed its smoke test: {output.decode(errors='replace')[-500:]}")
        self._note(rollout, "green passed its smoke test", "pass")

    async def _switch(self, rollout: Rollout) -> None:
        await self._set_route(rollout, stable=rollout.new, canary=rollout.old, weight=0)
        self._note(rollout, "switched: all traffic on green at once; blue kept warm for undo")

    async def _keep_warm(self, rollout: Rollout) -> None:
        delay = rollout.params.scale_down_delay
        rollout.phase = Phase.PAUSED
        self._note(rollout, f"blue stays warm {delay:g} s (`rollout undo` switches back at once)")
        self._save(rollout)
        if await self._wait(rollout, delay) is None:
            rollout.phase = Phase.PROGRESSING

    async def _retire_old(self, rollout: Rollout) -> None:
        await self._set_route(rollout, stable=rollout.new)
        await asyncio.sleep(1.0)
        self.cluster.stop(rollout.old)
        self._note(rollout, f"retired {', '.join(rollout.old)}")

    async def _start_canary(self, rollout: Rollout) -> None:
        await self._start(rollout, [f"{rollout.service}-r{rollout.id}-0"])
        await self._set_route(rollout, stable=rollout.old, canary=rollout.new, weight=0)

    def _weigh(self, weight: int) -> Callable[[Rollout], Awaitable[None]]:
        async def weigh(rollout: Rollout) -> None:
            await self._set_route(rollout, stable=rollout.old, canary=rollout.new, weight=weight)
            rollout.weight = weight
            self._note(rollout, f"canary weight {weight / 100:g} %")

        return weigh

    async def _hold(self, rollout: Rollout) -> None:
        if rollout.weight < 10_000:
            await self._wait(rollout, rollout.params.pause)

    async def _analyse(self, rollout: Rollout) -> None:
        params = rollout.params
        if not params.analysis or rollout.weight >= 10_000:
            return
        prometheus = self.cluster.prometheus()
        if prometheus is None:
            raise Aborted("no Prometheus to analyse with: start `up --processes --prometheus`")
        thresholds = analysis.Thresholds(min_requests=params.min_requests)
        window = f"{params.window:g}s"
        started = time.monotonic()
        while True:
            verdict = await analysis.evaluate(
                self.cluster.http,
                prometheus,
                rollout.service,
                rollout.target.version,
                rollout.source.version,
                window,
                thresholds,
            )
            self._note(
                rollout,
                f"analysis at {rollout.weight / 100:g} %: {verdict.summary()}",
                verdict.outcome.value,
            )
            if verdict.outcome is analysis.Outcome.PASS:
                return
            if verdict.outcome is analysis.Outcome.FAIL:
                raise Aborted(f"analysis failed: {'; '.join(verdict.reasons)}")
            if time.monotonic() - started > params.deadline:
                raise Aborted(f"no verdict within {params.deadline:g} s: too little traffic")
            if await self._wait(rollout, min(5.0, params.window / 2)) is not None:
                return

    async def _promote(self, rollout: Rollout) -> None:
        more = [
            f"{rollout.service}-r{rollout.id}-{i}"
            for i in range(len(rollout.new), rollout.params.replicas)
        ]
        if more:
            await self._start(rollout, more)
        await self._set_route(rollout, stable=rollout.new)
        self._note(rollout, "promoted: the canary is the stable; no canary route left")
        await asyncio.sleep(1.0)
        self.cluster.stop(rollout.old)
        self._note(rollout, f"retired {', '.join(rollout.old)}")

    # -- retreat, waiting, bookkeeping -----------------------------------------------------

    async def _retreat(self, rollout: Rollout, why: str, phase: Phase) -> None:
        """Traffic back to the old release, the new processes retired: an abort (or the
        undo of a blue-green switch while blue is still warm: instant)."""
        self._note(rollout, f"going back to {rollout.source.version}: {why}")
        running = self._running()
        old = [name for name in rollout.old if name in running]
        if not old:  # recreate or rolling got far: bring the old release back first
            self.cluster.start(rollout.service, rollout.source, rollout.old)
            await self.cluster.ready(rollout.old, rollout.source.version)
        await self._set_route(rollout, stable=rollout.old)
        await asyncio.sleep(1.0)
        self.cluster.stop(rollout.new)
        rollout.phase = phase
        rollout.weight = 0
        rollout.ended = now()
        self._note(rollout, f"{phase}: {rollout.service} runs {rollout.source.version} again")
        self._save(rollout)

    async def _wait(self, rollout: Rollout, seconds: float) -> str | None:
        """Sleep, unless a person asks otherwise meanwhile: returns their request (promote
        ends the wait; abort raises Aborted)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            request = self._take_request(rollout)
            if request == ABORT:
                raise Aborted("aborted by request")
            if request == UNDO:
                raise Aborted("undone by request", Phase.UNDONE)
            if request in (PROMOTE, PROMOTE_FULL):
                if request == PROMOTE_FULL and rollout.strategy is Strategy.CANARY:
                    rollout.step = len(self.plan(rollout)) - 2  # straight to the promotion
                self._note(rollout, f"{request} requested")
                return request
            await asyncio.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
        return None

    def _take_request(self, rollout: Rollout) -> str | None:
        stored = self.store.load().current
        request = stored.requested if stored is not None and stored.id == rollout.id else None
        if request is not None:
            rollout.requested = None
            self._save(rollout)
        return request

    async def _set_route(
        self,
        rollout: Rollout,
        *,
        stable: Sequence[str],
        canary: Sequence[str] = (),
        weight: int = 0,
    ) -> None:
        if rollout.service not in ROUTED:
            return  # nothing routes calls to it: its processes are all there is
        methods = rollout.params.canary_methods
        await self.cluster.set_route(rollout.service, stable, canary, weight, methods)

    def _running(self) -> set[str]:
        return {process.name for process in self.cluster.processes()}

    def _refresh(self, rollout: Rollout) -> Rollout:
        """Pick up a request made while a step ran (it is handled at the next wait)."""
        stored = self.store.load().current
        if stored is not None and stored.id == rollout.id and stored.requested:
            rollout.requested = stored.requested
        return rollout

    def _note(self, rollout: Rollout, what: str, verdict: str | None = None) -> None:
        event = rollout.note(what, verdict)
        self.say(f"{event.at[11:19]}  {rollout.service} #{rollout.id}  {what}")
        self._save(rollout)

    def _save(self, rollout: Rollout) -> None:
        history = self.store.load()
        history.rollouts = [r for r in history.rollouts if r.id != rollout.id] + [rollout]
        history.rollouts.sort(key=lambda r: r.id)
        self.store.save(history)


def request(store: Store, what: str) -> Rollout:
    """Leave a request for the controller of the current rollout."""
    history = store.load()
    rollout = history.current
    if rollout is None:
        raise RuntimeError("no rollout in progress")
    rollout.requested = what
    store.save(history)
    return rollout
