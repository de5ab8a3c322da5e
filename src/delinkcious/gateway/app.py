"""``create_app``: the public ``/v1`` API over any ``LinkManager`` and ``UserManager``.

Whether the managers run in this process or behind HTTP is the wiring's choice; this
module only sees the Protocols.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Query, Request, Response

from delinkcious import __version__
from delinkcious.gateway import errors
from delinkcious.gateway.auth import AccessToken, CurrentUser
from delinkcious.gateway.body_limit import BodyLimitMiddleware
from delinkcious.gateway.responses import JsonResponse
from delinkcious.gateway.schemas import (
    AddLinkIn,
    ErrorOut,
    FollowersOut,
    FollowIn,
    FollowingOut,
    LinkOut,
    LinksPage,
    LoginIn,
    NewsPage,
    RegisterIn,
    SessionOut,
    UpdateLinkIn,
    UserOut,
)
from delinkcious.model.errors import InvalidArgument
from delinkcious.model.events import Event
from delinkcious.model.links import (
    AddLinkRequest,
    GetLinksRequest,
    Link,
    LinkFilter,
    LinkManager,
    UpdateLinkRequest,
)
from delinkcious.model.news import GetNewsRequest, NewsManager
from delinkcious.model.social import SocialGraphManager
from delinkcious.model.users import UserManager
from delinkcious.model.validation import MAX_PAGE_SIZE

_ERRORS = {status: {"model": ErrorOut} for status in (400, 401, 403, 404, 409, 413, 422)}
_LIST_PARAMS = frozenset(
    {"url_regex", "title_regex", "description_regex", "tag", "start_token", "limit"}
)


def link_json(link: Link) -> dict[str, object]:
    return {
        "url": link.url,
        "title": link.title,
        "description": link.description,
        "tags": sorted(link.tags),
        "status": link.status.value,
        "created_at": link.created_at.isoformat(),
        "updated_at": link.updated_at.isoformat(),
    }


def news_json(event: Event) -> dict[str, object]:
    return {
        "id": event.id,
        "type": event.type.value,
        "author": event.author,
        "url": event.url,
        "title": event.title,
        "timestamp": event.time.isoformat(),
    }


def _reject_unknown_params(request: Request, allowed: frozenset[str]) -> None:
    """An unknown parameter is an error, never ignored: a misspelt filter must not vanish."""
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise InvalidArgument(
            f"unknown query parameter(s): {', '.join(unknown)}; "
            f"accepted: {', '.join(sorted(allowed))}",
            code="unknown_parameter",
        )


def create_app(
    links: LinkManager,
    users: UserManager,
    social: SocialGraphManager,
    news: NewsManager,
    *,
    max_body_bytes: int = 1 << 20,
) -> FastAPI:
    app = FastAPI(
        title="Delinkcious",
        version=__version__,
        summary="Social bookmarking: save links, follow people, read their news.",
        default_response_class=JsonResponse,
        responses=_ERRORS,
    )
    app.state.links = links
    app.state.users = users
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    errors.install(app)

    @app.get("/", include_in_schema=False)
    async def index() -> JsonResponse:
        return JsonResponse({"name": "delinkcious", "version": __version__, "docs": "/docs"})

    @app.get("/healthz", tags=["health"])
    async def healthz() -> JsonResponse:
        return JsonResponse({"status": "ok"})

    @app.post("/v1/users", status_code=201, response_model=UserOut, tags=["users"])
    async def register(body: RegisterIn) -> JsonResponse:
        user = await users.register(body.username, body.email, body.password)
        return JsonResponse({"username": user.username, "email": user.email}, status_code=201)

    @app.post("/v1/sessions", status_code=201, response_model=SessionOut, tags=["users"])
    async def login(body: LoginIn) -> JsonResponse:
        token = await users.login(body.username, body.password)
        return JsonResponse({"access_token": token}, status_code=201)

    @app.delete("/v1/sessions/current", status_code=204, tags=["users"])
    async def logout(token: AccessToken) -> Response:
        await users.logout(token)
        return Response(status_code=204)

    @app.get("/v1/links", response_model=LinksPage, tags=["links"])
    async def get_links(
        request: Request,
        username: CurrentUser,
        url_regex: str | None = None,
        title_regex: str | None = None,
        description_regex: str | None = None,
        tag: str | None = None,
        start_token: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 10,
    ) -> JsonResponse:
        _reject_unknown_params(request, _LIST_PARAMS)
        result = await links.get_links(
            GetLinksRequest(
                username=username,
                filter=LinkFilter(
                    url_regex=url_regex,
                    title_regex=title_regex,
                    description_regex=description_regex,
                    tag=tag,
                ),
                start_token=start_token,
                limit=limit,
            )
        )
        return JsonResponse(
            {
                "links": [link_json(link) for link in result.links],
                "next_page_token": result.next_page_token,
            }
        )

    @app.post("/v1/links", status_code=201, response_model=LinkOut, tags=["links"])
    async def add_link(body: AddLinkIn, username: CurrentUser) -> JsonResponse:
        link = await links.add_link(
            AddLinkRequest(
                username=username,
                url=body.url,
                title=body.title,
                description=body.description,
                tags=frozenset(body.tags),
            )
        )
        return JsonResponse(link_json(link), status_code=201)

    @app.put("/v1/links", response_model=LinkOut, tags=["links"])
    async def update_link(body: UpdateLinkIn, username: CurrentUser) -> JsonResponse:
        link = await links.update_link(
            UpdateLinkRequest(
                username=username,
                url=body.url,
                title=body.title,
                description=body.description,
                add_tags=frozenset(body.add_tags),
                remove_tags=frozenset(body.remove_tags),
            )
        )
        return JsonResponse(link_json(link))

    @app.delete("/v1/links", status_code=204, tags=["links"])
    async def delete_link(request: Request, url: str, username: CurrentUser) -> Response:
        _reject_unknown_params(request, frozenset({"url"}))
        await links.delete_link(username, url)
        return Response(status_code=204)

    @app.get("/v1/following", response_model=FollowingOut, tags=["social"])
    async def get_following(username: CurrentUser) -> JsonResponse:
        return JsonResponse({"following": await social.get_following(username)})

    @app.post("/v1/following", status_code=201, response_model=FollowingOut, tags=["social"])
    async def follow(body: FollowIn, username: CurrentUser) -> JsonResponse:
        await social.follow(body.followed, username)
        return JsonResponse({"following": await social.get_following(username)}, status_code=201)

    @app.delete("/v1/following", status_code=204, tags=["social"])
    async def unfollow(request: Request, followed: str, username: CurrentUser) -> Response:
        _reject_unknown_params(request, frozenset({"followed"}))
        await social.unfollow(followed, username)
        return Response(status_code=204)

    @app.get("/v1/followers", response_model=FollowersOut, tags=["social"])
    async def get_followers(username: CurrentUser) -> JsonResponse:
        return JsonResponse({"followers": await social.get_followers(username)})

    @app.get("/v1/news", response_model=NewsPage, tags=["news"])
    async def get_news(
        request: Request,
        username: CurrentUser,
        start_token: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 10,
    ) -> JsonResponse:
        _reject_unknown_params(request, frozenset({"start_token", "limit"}))
        result = await news.get_news(
            GetNewsRequest(username=username, start_token=start_token, limit=limit)
        )
        return JsonResponse(
            {
                "events": [news_json(event) for event in result.events],
                "next_page_token": result.next_page_token,
            }
        )

    return app
