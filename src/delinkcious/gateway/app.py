"""``create_app``: the public ``/v1`` API over the service Protocols.

Whether the managers run in this process or behind HTTP is the wiring's choice; this
module only sees the Protocols. Authenticated routes read the caller and their query
string by hand (``auth.authenticate``, ``query.parse_query``): FastAPI's dependency tree
cost more per request than the database query on the hot read paths.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi

from delinkcious import __version__
from delinkcious.gateway import errors
from delinkcious.gateway.auth import SECURITY, SECURITY_SCHEMES, access_token, authenticate
from delinkcious.gateway.body_limit import BodyLimitMiddleware
from delinkcious.gateway.health import install_health
from delinkcious.gateway.query import parse_query, query_parameters
from delinkcious.gateway.responses import JsonResponse
from delinkcious.gateway.schemas import (
    AddLinkIn,
    ErrorOut,
    FollowedQuery,
    FollowersOut,
    FollowIn,
    FollowingOut,
    LinkOut,
    LinksPage,
    LinksQuery,
    LoginIn,
    NewsPage,
    NewsQuery,
    RegisterIn,
    SessionOut,
    UpdateLinkIn,
    UrlQuery,
    UserOut,
)
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
from delinkcious.platform.build import Build
from delinkcious.platform.health import Readiness
from delinkcious.platform.tracing import FASTAPI_TELEMETRY

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (400, 401, 403, 404, 409, 413, 415, 422)
}


def _authenticated(query: type | None = None) -> dict[str, Any]:
    """``openapi_extra`` of a route that needs a token (and takes ``query`` parameters)."""
    return {**SECURITY, **(query_parameters(query) if query else {})}


def link_json(link: Link) -> dict[str, object]:
    # Datetimes and enums are left to orjson, which writes them (RFC 3339, value) in C.
    return {
        "url": link.url,
        "title": link.title,
        "description": link.description,
        "tags": sorted(link.tags),
        "status": link.status,
        "created_at": link.created_at,
        "updated_at": link.updated_at,
    }


def news_json(event: Event) -> dict[str, object]:
    return {
        "id": event.id,
        "type": event.type,
        "author": event.author,
        "url": event.url,
        "title": event.title,
        "timestamp": event.time,
    }


def _install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    links: LinkManager,
    users: UserManager,
    social: SocialGraphManager,
    news: NewsManager,
    *,
    build: Build,
    readiness: Readiness | None = None,
    max_body_bytes: int = 1 << 20,
) -> FastAPI:
    app = FastAPI(
        title="Delinkcious",
        version=__version__,
        summary="Social bookmarking: save links, follow people, read their news.",
        default_response_class=JsonResponse,
        responses=_ERRORS,
        telemetry=FASTAPI_TELEMETRY,
    )
    app.state.users = users
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    errors.install(app)
    _install_openapi(app)

    @app.get("/", include_in_schema=False)
    async def index() -> JsonResponse:
        return JsonResponse({"name": "delinkcious", "version": build.version, "docs": "/docs"})

    install_health(app, readiness or Readiness(), build)

    @app.post("/v1/users", status_code=201, response_model=UserOut, tags=["users"])
    async def register(body: RegisterIn) -> JsonResponse:
        user = await users.register(body.username, body.email, body.password)
        return JsonResponse({"username": user.username, "email": user.email}, status_code=201)

    @app.post("/v1/sessions", status_code=201, response_model=SessionOut, tags=["users"])
    async def login(body: LoginIn) -> JsonResponse:
        token = await users.login(body.username, body.password)
        return JsonResponse({"access_token": token}, status_code=201)

    @app.delete(
        "/v1/sessions/current", status_code=204, tags=["users"], openapi_extra=_authenticated()
    )
    async def logout(request: Request) -> Response:
        await users.logout(access_token(request))
        return Response(status_code=204)

    @app.get(
        "/v1/links",
        response_model=LinksPage,
        tags=["links"],
        openapi_extra=_authenticated(LinksQuery),
    )
    async def get_links(request: Request) -> JsonResponse:
        username = await authenticate(request)
        query = parse_query(request, LinksQuery)
        result = await links.get_links(
            GetLinksRequest(
                username=username,
                filter=LinkFilter(
                    url_regex=query.url_regex,
                    title_regex=query.title_regex,
                    description_regex=query.description_regex,
                    tag=query.tag,
                ),
                start_token=query.start_token,
                limit=query.limit,
            )
        )
        return JsonResponse(
            {
                "links": [link_json(link) for link in result.links],
                "next_page_token": result.next_page_token,
            }
        )

    @app.post(
        "/v1/links",
        status_code=201,
        response_model=LinkOut,
        tags=["links"],
        openapi_extra=_authenticated(),
    )
    async def add_link(request: Request, body: AddLinkIn) -> JsonResponse:
        username = await authenticate(request)
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

    @app.put("/v1/links", response_model=LinkOut, tags=["links"], openapi_extra=_authenticated())
    async def update_link(request: Request, body: UpdateLinkIn) -> JsonResponse:
        username = await authenticate(request)
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

    @app.delete(
        "/v1/links", status_code=204, tags=["links"], openapi_extra=_authenticated(UrlQuery)
    )
    async def delete_link(request: Request) -> Response:
        username = await authenticate(request)
        await links.delete_link(username, parse_query(request, UrlQuery).url)
        return Response(status_code=204)

    @app.get(
        "/v1/following",
        response_model=FollowingOut,
        tags=["social"],
        openapi_extra=_authenticated(),
    )
    async def get_following(request: Request) -> JsonResponse:
        username = await authenticate(request)
        return JsonResponse({"following": await social.get_following(username)})

    @app.post(
        "/v1/following",
        status_code=201,
        response_model=FollowingOut,
        tags=["social"],
        openapi_extra=_authenticated(),
    )
    async def follow(request: Request, body: FollowIn) -> JsonResponse:
        username = await authenticate(request)
        await social.follow(body.followed, username)
        return JsonResponse({"following": await social.get_following(username)}, status_code=201)

    @app.delete(
        "/v1/following",
        status_code=204,
        tags=["social"],
        openapi_extra=_authenticated(FollowedQuery),
    )
    async def unfollow(request: Request) -> Response:
        username = await authenticate(request)
        await social.unfollow(parse_query(request, FollowedQuery).followed, username)
        return Response(status_code=204)

    @app.get(
        "/v1/followers",
        response_model=FollowersOut,
        tags=["social"],
        openapi_extra=_authenticated(),
    )
    async def get_followers(request: Request) -> JsonResponse:
        username = await authenticate(request)
        return JsonResponse({"followers": await social.get_followers(username)})

    @app.get(
        "/v1/news", response_model=NewsPage, tags=["news"], openapi_extra=_authenticated(NewsQuery)
    )
    async def get_news(request: Request) -> JsonResponse:
        username = await authenticate(request)
        query = parse_query(request, NewsQuery)
        result = await news.get_news(
            GetNewsRequest(username=username, start_token=query.start_token, limit=query.limit)
        )
        return JsonResponse(
            {
                "events": [news_json(event) for event in result.events],
                "next_page_token": result.next_page_token,
            }
        )

    return app
