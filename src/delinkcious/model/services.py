"""The services of Delinkcious by name, each with the Protocol it implements."""

from __future__ import annotations

from delinkcious.model.checker import LinkChecker
from delinkcious.model.links import LinkManager
from delinkcious.model.news import NewsManager
from delinkcious.model.social import SocialGraphManager
from delinkcious.model.users import UserManager

PROTOCOLS: dict[str, type] = {
    "links": LinkManager,
    "users": UserManager,
    "social_graph": SocialGraphManager,
    "news": NewsManager,
    "link_checker": LinkChecker,
}
