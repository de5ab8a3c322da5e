"""Regex filters on links, run on RE2 (linear time) so no user pattern can stall the service."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import re2

from delinkcious.model.errors import InvalidArgument
from delinkcious.model.links import Link, LinkFilter
from delinkcious.model.validation import MAX_REGEX, check_tag

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False
_OPTIONS.max_mem = 1 << 20  # 1 MiB of automaton per pattern: bounds memory as well as time
# RE2 is linear in the text, but the constant grows with the compiled program: ".{1000}x"
# costs ~12 ms per 8 KiB description. At 1000 instructions a full scan of a user's links
# stays around 0.1 s even for the worst pattern.
MAX_PROGRAM_SIZE = 1000


def _compile(name: str, pattern: str) -> re2._Regexp:
    if len(pattern) > MAX_REGEX:
        raise InvalidArgument(f"{name} is longer than {MAX_REGEX} characters", code="invalid_regex")
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise InvalidArgument(
            f"{name} is not a valid regex: {reason}", code="invalid_regex"
        ) from exc
    if compiled.programsize > MAX_PROGRAM_SIZE:
        raise InvalidArgument(
            f"{name} is too complex (large counted repetitions); simplify it",
            code="invalid_regex",
        )
    return compiled


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    """A ``LinkFilter`` checked and compiled once per request.

    ``tag`` is matched by the store (exactly, in SQL); the regexes here, as unanchored
    searches, so the results are identical on every storage backend.
    """

    tag: str | None
    predicates: tuple[Callable[[Link], bool], ...]

    @property
    def needs_scan(self) -> bool:
        return bool(self.predicates)

    def matches(self, link: Link) -> bool:
        return all(predicate(link) for predicate in self.predicates)


def compile_filter(link_filter: LinkFilter) -> CompiledFilter:
    predicates: list[Callable[[Link], bool]] = []
    if link_filter.url_regex:
        url_re = _compile("url_regex", link_filter.url_regex)
        predicates.append(lambda link: url_re.search(link.url) is not None)
    if link_filter.title_regex:
        title_re = _compile("title_regex", link_filter.title_regex)
        predicates.append(lambda link: title_re.search(link.title) is not None)
    if link_filter.description_regex:
        description_re = _compile("description_regex", link_filter.description_regex)
        predicates.append(lambda link: description_re.search(link.description) is not None)
    tag = check_tag(link_filter.tag) if link_filter.tag is not None else None
    return CompiledFilter(tag=tag, predicates=tuple(predicates))
