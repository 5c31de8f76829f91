"""HTTP front end over a :class:`Retriever` (FastAPI); every endpoint is a thin call into it.

Errors: invalid values (wrong dimension, NaN, k < 1, unknown modality, unreadable image) are 422
with ``{"detail": "<message>"}``; a raw text/image query to a server started without a CLIP
checkpoint is 400. Endpoints are plain functions, so FastAPI runs them in its thread pool.
"""

from __future__ import annotations

import io
from typing import Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse
from PIL import Image
from pydantic import BaseModel

from cmhash import __version__
from cmhash.service.retriever import EncoderMissing, Retriever


class TextQuery(BaseModel):
    text: str
    k: int = 10
    radius: int | None = None


class FeaturesQuery(BaseModel):
    modality: str
    features: list[float]
    k: int = 10
    radius: int | None = None


class CodesQuery(BaseModel):
    codes: list[int]
    k: int = 10
    radius: int | None = None


def _error(status: int):
    async def handler(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=status, content={"detail": str(exc)})
    return handler


def create_app(retriever: Retriever) -> FastAPI:
    """The app serving ``retriever``; run it with uvicorn (``cmhash serve`` does)."""
    app = FastAPI(title="cmhash retrieval", version=__version__)
    app.add_exception_handler(ValueError, _error(422))  # DataError is a ValueError
    app.add_exception_handler(EncoderMissing, _error(400))

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/info")
    def info() -> dict[str, Any]:
        return retriever.info()

    @app.post("/search/text")
    def search_text(query: TextQuery) -> dict[str, Any]:
        return retriever.search_text(query.text, query.k, query.radius).to_dict()

    @app.post("/search/image")
    def search_image(file: UploadFile = File(...), k: int = Form(10),
                     radius: int | None = Form(None)) -> dict[str, Any]:
        try:
            with Image.open(io.BytesIO(file.file.read())) as img:
                image = img.convert("RGB")
        except (OSError, Image.DecompressionBombError) as exc:
            raise ValueError(f"upload {file.filename!r} is not a readable image ({exc})") from None
        return retriever.search_image(image, k, radius).to_dict()

    @app.post("/search/features")
    def search_features(query: FeaturesQuery) -> dict[str, Any]:
        return retriever.search_features(query.modality, query.features, query.k, query.radius).to_dict()

    @app.post("/search/codes")
    def search_codes(query: CodesQuery) -> dict[str, Any]:
        return retriever.search_codes(query.codes, query.k, query.radius).to_dict()

    return app
