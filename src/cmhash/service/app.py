"""HTTP front end over a :class:`Retriever` (FastAPI): the JSON API and the search page at ``/``.

Contract: every constraint a request must meet is declared in the OpenAPI schema (code length
and values, feature dimensions, k and radius bounds, non-empty text), so a request the schema
accepts is answered 200 (or 404 for an unknown item), and every error, whatever raised it, is
``{"detail": "<message>"}`` (the declared ``Error`` schema) with a 4xx status:

- 400: a raw text/image query to a server started without a CLIP checkpoint;
- 401/403: a write without the API key / on a server with writes disabled;
- 404: an unknown item; 409: adding an (id, modality) that exists;
- 413: over a :class:`~cmhash.service.limits.Limits` limit (body bytes, image pixels);
- 422: any other invalid value.

Endpoints are plain functions, so FastAPI runs them in its thread pool; the store and the encoder
do their own locking (see :mod:`cmhash.service.stores`, :class:`Retriever`).
"""


import hmac
import time
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from pydantic import AfterValidator, BaseModel, Field, create_model

from cmhash import __version__
from cmhash.service.limits import BodyLimit, Limits, TooLarge, open_image
from cmhash.service.retriever import EncoderMissing, Results, Retriever, checked_text
from cmhash.service.stores import ItemExists

STATIC = Path(__file__).parent / "static"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp"}
MAX_ID = 2**63 - 1
MAX_FEATURE = 1e6


class Error(BaseModel):
    detail: str


def _status(code: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Error}}


SEARCH_ERRORS = {**_status(400), **_status(413), **_status(422)}
WRITE_ERRORS = {**SEARCH_ERRORS, **_status(401), **_status(403), **_status(409)}


def _text(limit: int):
    """A non-blank string that is valid Unicode (a lone surrogate is a 422, not a 500 in the tokenizer)."""
    def check(value: str) -> str:
        checked_text(value, limit)
        return value
    return Annotated[str, Field(min_length=1, pattern=r"\S"), AfterValidator(check)]


def request_models(retriever: Retriever, limits: Limits) -> dict[str, type[BaseModel]]:
    """The request bodies, with this model's bits and feature sizes in the schema."""
    bits, (image_dim, text_dim) = retriever.model.bits, retriever.model.dims
    k = Annotated[int, Field(ge=1, le=limits.max_k)]
    radius = Annotated[int | None, Field(ge=0, le=bits)]
    item_id = Annotated[int, Field(ge=0, le=MAX_ID)]
    # Features are float32 to the model: bounded well inside its range (CLIP features are unit-norm).
    finite = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_FEATURE, le=MAX_FEATURE)]

    def vector(dim: int):
        return Annotated[list[finite], Field(min_length=dim, max_length=dim)]

    text = _text(limits.max_text_chars)
    image_features = create_model("ImageFeaturesQuery", modality=(Literal["image"], ...),
                                  features=(vector(image_dim), ...), k=(k, 10), radius=(radius, None))
    text_features = create_model("TextFeaturesQuery", modality=(Literal["text"], ...),
                                 features=(vector(text_dim), ...), k=(k, 10), radius=(radius, None))
    metadata = (dict[str, Any], Field(default_factory=dict, description="shown with the item's hits"))
    return {
        "text": create_model("TextQuery", text=(text, ...), k=(k, 10), radius=(radius, None)),
        "features": Annotated[image_features | text_features, Field(discriminator="modality")],
        "codes": create_model("CodesQuery", codes=(Annotated[list[Literal[-1, 1]], Field(min_length=bits,
                                                                                          max_length=bits)], ...),
                              k=(k, 10), radius=(radius, None)),
        "item": create_model("ItemQuery", id=(item_id, ...), modality=(Literal["image", "text"], "image"),
                             k=(k, 10), radius=(radius, None)),
        "new": Annotated[
            create_model("NewImageFeaturesItem", id=(item_id, ...), modality=(Literal["image"], ...),
                         features=(vector(image_dim), ...), metadata=metadata)
            | create_model("NewTextFeaturesItem", id=(item_id, ...), modality=(Literal["text"], ...),
                           features=(vector(text_dim), ...), metadata=metadata)
            | create_model("NewTextItem", id=(item_id, ...), modality=(Literal["caption"], ...), text=(text, ...),
                           metadata=metadata),
            Field(discriminator="modality")],
    }


def _handler(status: int):
    async def handler(_: Request, exc: Exception) -> JSONResponse:
        message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)  # KeyError quotes its str
        return JSONResponse(status_code=status, content={"detail": message or type(exc).__name__})
    return handler


async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's list of errors as one message (without echoing the input back)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for e in exc.errors():
        loc = [str(p) for p in e["loc"] if p != "body"]
        shape = ".".join("#" if p.isdigit() else p for p in loc)  # features.0, features.1 ... are one complaint
        groups.setdefault((shape, e["msg"]), []).append(".".join(loc) or "body")
    parts = [f"{where[0]}: {msg}" + (f" (and {len(where) - 1} more like it)" if len(where) > 1 else "")
             for (_, msg), where in groups.items()]
    return JSONResponse(status_code=422, content={"detail": "; ".join(parts)})


def api_key_check(api_key: str | None):
    """The dependency guarding writes: the ``X-API-Key`` header must equal ``api_key`` (compared in constant time)."""
    header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the key the server was started with")

    def check(given: str | None = Depends(header)) -> None:
        if api_key is None:
            raise HTTPException(403, "writes are disabled: start the server with an API key "
                                     "($CMHASH_API_KEY or --api-key-file)")
        if given is None or not hmac.compare_digest(given.encode(), api_key.encode()):
            raise HTTPException(401, "missing or wrong X-API-Key header")
    return check


def create_app(retriever: Retriever, *, limits: Limits = Limits(), api_key: str | None = None,
               image_root: str | Path | None = None) -> FastAPI:
    """The app serving ``retriever``; run it with uvicorn (``cmhash serve`` does).

    ``api_key``: enables ``POST /items`` and ``DELETE /items/{id}`` for requests carrying it.
    ``image_root``: the folder the index manifest's image paths are relative to (thumbnails).
    """
    app = FastAPI(title="cmhash retrieval", version=__version__)
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    for exc_type, status in ((ValueError, 422), (TooLarge, 413), (ItemExists, 409), (KeyError, 404),
                             (EncoderMissing, 400)):  # DataError is a ValueError
        app.add_exception_handler(exc_type, _handler(status))
    models = request_models(retriever, limits)
    writer = api_key_check(api_key)
    root = Path(image_root).resolve() if image_root is not None else None

    def answer(results: Results, started: float) -> dict[str, Any]:
        return {**results.to_dict(), "took_ms": round((time.perf_counter() - started) * 1000, 3)}

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/info")
    def info() -> dict[str, Any]:
        return {**retriever.info(), "thumbnails": root is not None, "writes": api_key is not None,
                "limits": vars(limits)}

    @app.post("/search/text", responses=SEARCH_ERRORS)
    def search_text(query: models["text"]) -> dict[str, Any]:
        started = time.perf_counter()
        return answer(retriever.search_text(query.text, query.k, query.radius, limits.max_text_chars), started)

    @app.post("/search/image", responses=SEARCH_ERRORS)
    def search_image(file: UploadFile = File(...), k: Annotated[int, Form(ge=1, le=limits.max_k)] = 10,
                     radius: Annotated[int | None, Form(ge=0, le=retriever.model.bits)] = None) -> dict[str, Any]:
        started = time.perf_counter()
        image = open_image(file.file.read(), file.filename, limits.max_image_pixels)
        return answer(retriever.search_image(image, k, radius), started)

    @app.post("/search/features", responses=SEARCH_ERRORS)
    def search_features(query: models["features"]) -> dict[str, Any]:
        started = time.perf_counter()
        return answer(retriever.search_features(query.modality, query.features, query.k, query.radius), started)

    @app.post("/search/codes", responses=SEARCH_ERRORS)
    def search_codes(query: models["codes"]) -> dict[str, Any]:
        started = time.perf_counter()
        return answer(retriever.search_codes(query.codes, query.k, query.radius), started)

    @app.post("/search/item", responses={**SEARCH_ERRORS, **_status(404)})
    def search_item(query: models["item"]) -> dict[str, Any]:
        """More like this: the item's own features (from the indexed dataset) as the query."""
        started = time.perf_counter()
        return answer(retriever.search_item(query.id, query.modality, query.k, query.radius), started)

    @app.post("/items", responses=WRITE_ERRORS, dependencies=[Depends(writer)])
    def add_item(item: models["new"]) -> dict[str, Any]:
        """Index an item from its features, or from a caption (needs the CLIP encoder); durable when answered."""
        if item.modality == "caption":
            features, modality = retriever.text_features(item.text), "text"
            metadata = {"text": item.text, **item.metadata}
        else:
            features, modality, metadata = item.features, item.modality, item.metadata
        retriever.add_item(item.id, modality, features, metadata)
        return {"id": item.id, "modality": modality, "size": len(retriever.store)}

    @app.post("/items/image", responses=WRITE_ERRORS, dependencies=[Depends(writer)])
    def add_image_item(id: Annotated[int, Form(ge=0, le=MAX_ID)], file: UploadFile = File(...)) -> dict[str, Any]:
        """Index an uploaded image under ``id`` (needs the CLIP encoder); durable when answered."""
        image = open_image(file.file.read(), file.filename, limits.max_image_pixels)
        retriever.add_item(id, "image", retriever.image_features(image), {})
        return {"id": id, "modality": "image", "size": len(retriever.store)}

    @app.delete("/items/{item_id}", responses={**WRITE_ERRORS, **_status(404)}, dependencies=[Depends(writer)])
    def delete_item(item_id: Annotated[int, Field(ge=0, le=MAX_ID)]) -> dict[str, Any]:
        """Remove every indexed modality of the item; durable when answered."""
        removed = retriever.remove_item(item_id)
        if not removed:
            raise KeyError(f"no item with id {item_id} in the index")
        return {"id": item_id, "removed": removed, "size": len(retriever.store)}

    @app.get("/images/{path:path}", responses=_status(404), include_in_schema=False)
    def image_file(path: str) -> FileResponse:
        """A file under the image root, for thumbnails; nothing outside it (``..``, symlinks out) is served."""
        if root is None:
            raise KeyError("this server has no image root (start it with --images DIR)")
        target = (root / path).resolve()
        if not target.is_relative_to(root) or target.suffix.lower() not in IMAGE_SUFFIXES or not target.is_file():
            raise KeyError(f"no image {path!r} under the image root")
        return FileResponse(target)

    return app
