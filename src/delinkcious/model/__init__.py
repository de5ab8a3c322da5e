"""Types, Protocols and rules of the domain. No I/O, no framework."""

from delinkcious.model.errors import (
    AlreadyExists,
    DelinkciousError,
    InvalidArgument,
    LimitExceeded,
    NotFound,
    Unauthenticated,
    Unavailable,
)
from delinkcious.model.links import (
    AddLinkRequest,
    GetLinksRequest,
    GetLinksResult,
    Link,
    LinkFilter,
    LinkManager,
    LinkStatus,
    UpdateLinkRequest,
)
from delinkcious.model.users import User, UserManager

__all__ = [
    "AddLinkRequest",
    "AlreadyExists",
    "DelinkciousError",
    "GetLinksRequest",
    "GetLinksResult",
    "InvalidArgument",
    "LimitExceeded",
    "Link",
    "LinkFilter",
    "LinkManager",
    "LinkStatus",
    "NotFound",
    "Unauthenticated",
    "Unavailable",
    "UpdateLinkRequest",
    "User",
    "UserManager",
]
