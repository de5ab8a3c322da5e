"""Request and response bodies of the public API. Strict: a wrong type or an unknown field
is a 422, never silently coerced or dropped."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from delinkcious.model.validation import MAX_PAGE_SIZE


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RegisterIn(_Strict):
    username: StrictStr
    email: StrictStr
    password: StrictStr


class UserOut(BaseModel):
    username: str
    email: str


class LoginIn(_Strict):
    username: StrictStr
    password: StrictStr


class SessionOut(BaseModel):
    access_token: str


class AddLinkIn(_Strict):
    url: StrictStr
    title: StrictStr
    description: StrictStr = ""
    tags: list[StrictStr] = []


class UpdateLinkIn(_Strict):
    url: StrictStr
    title: StrictStr | None = None
    description: StrictStr | None = None
    add_tags: list[StrictStr] = []
    remove_tags: list[StrictStr] = []


class LinksQuery(BaseModel):
    url_regex: str | None = Field(None, description="RE2, unanchored search in the url")
    title_regex: str | None = Field(None, description="RE2, unanchored search in the title")
    description_regex: str | None = Field(
        None, description="RE2, unanchored search in the description"
    )
    tag: str | None = Field(None, description="exact tag")
    start_token: str | None = Field(None, description="next_page_token of the previous page")
    limit: int = Field(10, ge=1, le=MAX_PAGE_SIZE, description="page size")


class NewsQuery(BaseModel):
    start_token: str | None = Field(None, description="next_page_token of the previous page")
    limit: int = Field(10, ge=1, le=MAX_PAGE_SIZE, description="page size")


class UrlQuery(BaseModel):
    url: str


class FollowedQuery(BaseModel):
    followed: str


class LinkOut(BaseModel):
    url: str
    title: str
    description: str
    tags: list[str]
    status: str
    created_at: str
    updated_at: str


class LinksPage(BaseModel):
    links: list[LinkOut]
    next_page_token: str | None


class FollowIn(_Strict):
    followed: StrictStr


class FollowingOut(BaseModel):
    following: list[str]


class FollowersOut(BaseModel):
    followers: list[str]


class NewsEventOut(BaseModel):
    id: str
    type: str
    author: str
    url: str
    title: str
    timestamp: str


class NewsPage(BaseModel):
    events: list[NewsEventOut]
    next_page_token: str | None


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorDetail
