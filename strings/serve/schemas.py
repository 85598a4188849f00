"""Every request and answer shape of the service, in one place (they also make /docs)."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from strings.read.amount import DEFAULT_LOCALE, LOCALES
from strings.serve.errors import ServeError

__all__ = [
    "DigitOptions",
    "DigitsResponse",
    "ErrorResponse",
    "ImageItem",
    "ReadOptions",
    "ReadResponse",
    "parse_options",
    "request_body_schema",
]


class ImageItem(BaseModel):
    """One image of a JSON request."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field("", max_length=512, description="how results and errors name this image")
    data: str = Field(..., description="the image file's bytes, base64")


class Options(BaseModel):
    """The options of an image endpoint: unknown ones are refused, never silently ignored."""

    model_config = ConfigDict(extra="forbid")
    # Options an earlier version took, with why they went: a client still sending one is told
    # what changed rather than just "unknown option".
    retired: ClassVar[dict[str, str]] = {}


OptionsT = TypeVar("OptionsT", bound=Options)


class ReadOptions(Options):
    """Options of ``POST /v1/read`` (form fields, JSON keys or query parameters)."""

    retired: ClassVar[dict[str, str]] = {"decimals": "cents come from the separators read"}
    beam: int | None = Field(None, ge=0, description="CTC beam width; 0 greedy; default: the server's --beam")
    amount: bool = Field(False, description="add the cheque amount: written, value, accept/review and reasons")
    max_error: float = Field(0.01, gt=0.0, lt=1.0, description="error rate the amount's acceptance is judged at")
    field: bool = Field(False, description="each image is a loose crop (a register cell, a form box): find the string, then read it")
    column: bool = Field(
        False,
        description="the images, in order, are the rows of one register column: each row number read against its "
        "neighbours' (implies field; one model, not a committee)",
    )
    locale: str = Field(
        DEFAULT_LOCALE,
        description="how amounts are written: which mark groups thousands and which starts the cents",
        json_schema_extra={"enum": list(LOCALES)},
    )

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, locale: str) -> str:
        """Checked here, not by a pattern, so the 422 names the locales there are."""
        if locale not in LOCALES:
            context = {"locale": repr(locale), "known": ", ".join(LOCALES)}
            raise PydanticCustomError("unknown_locale", "unknown locale {locale} (known: {known})", context)
        return locale


class DigitOptions(Options):
    """Options of ``POST /v1/digits``."""

    model: str | None = Field(None, description="a bundled digit model (GET /v1/digits/models); default: the server's")


class JSONRead(BaseModel):
    model_config = ConfigDict(extra="allow")  # the options ride along; ReadOptions checks them
    images: list[ImageItem]


class DigitRecord(BaseModel):
    char: str
    confidence: float
    box: list[int]


class ReadRecord(BaseModel):
    """What ``strings recognize --json`` prints for one image, or ``image`` and ``error``."""

    model_config = ConfigDict(extra="allow")
    image: str
    text: str | None = None
    confidence: float | None = None
    digits: list[DigitRecord] | None = None
    amount: dict[str, Any] | None = None
    error: dict[str, str] | None = None


class ReadResponse(BaseModel):
    model: str
    results: list[ReadRecord]


class DigitsResponse(BaseModel):
    model: str
    results: list[dict[str, Any]]


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: str
    message: str
    item: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


def parse_options(cls: type[OptionsT], raw: dict[str, Any]) -> OptionsT:
    """``raw`` checked against ``cls``; the first problem becomes a 422 naming the option."""
    for option in raw:
        if option in cls.retired:
            raise ServeError(422, "bad_option", f"option {option!r} is gone: {cls.retired[option]}", item=option)
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        option = ".".join(str(p) for p in first["loc"]) or "options"
        problem = "unknown option" if first["type"] == "extra_forbidden" else first["msg"]
        raise ServeError(422, "bad_option", f"option {option!r}: {problem}", item=option) from None


def request_body_schema(options: type[Options], json_images: bool = True) -> dict[str, Any]:
    """The OpenAPI requestBody of an image endpoint: multipart parts named ``file``, or JSON."""
    opts = options.model_json_schema()["properties"]
    item = ImageItem.model_json_schema()
    item.pop("title", None)
    multipart = {
        "type": "object",
        "properties": {
            "file": {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "description": "one part per image",
            },
            **opts,
        },
        "required": ["file"],
    }
    content: dict[str, Any] = {"multipart/form-data": {"schema": multipart}}
    if json_images:
        content["application/json"] = {
            "schema": {
                "type": "object",
                "properties": {
                    "images": {"type": "array", "items": item},
                    **opts,
                },
                "required": ["images"],
            }
        }
    return {"requestBody": {"required": True, "content": content}}
