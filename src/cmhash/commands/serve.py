"""``cmhash serve``: the search page and the retrieval HTTP API (docs/retrieval.md) with uvicorn, on loopback by default."""

from __future__ import annotations

import argparse
import os

from cmhash.commands._args import add_retriever_args, open_retriever

API_KEY_ENV = "CMHASH_API_KEY"


def add_parser(sub: argparse._SubParsersAction) -> None:
    from cmhash.service.limits import Limits

    p = sub.add_parser("serve", help="serve the search page and API over HTTP (FastAPI + uvicorn)",
                       description="Load the model, index and optional CLIP encoder once, then serve the search "
                                   "page at / and GET /health, GET /info, POST /search/{text,image,features,codes,"
                                   "item}; with an API key also POST /items, POST /items/image, DELETE /items/{id}. "
                                   "Listens on 127.0.0.1 unless --host says otherwise; searches need no key, so "
                                   "expose it only behind something that adds authentication.")
    add_retriever_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    p.add_argument("--images", help="folder the index manifest's image paths are relative to (thumbnails in the page)")
    p.add_argument("--api-key-file", help=f"file holding the key that enables writes (else ${API_KEY_ENV}; "
                                          "neither: writes are off)")
    limits = Limits()
    p.add_argument("--max-body-bytes", type=int, default=limits.max_body_bytes, help="request body limit (413)")
    p.add_argument("--max-text-chars", type=int, default=limits.max_text_chars,
                   help="text queries are cut to this many characters before tokenizing")
    p.add_argument("--max-image-pixels", type=int, default=limits.max_image_pixels, help="upload limit (413)")
    p.add_argument("--max-k", type=int, default=limits.max_k, help="largest k a request may ask for (422)")
    p.set_defaults(func=run)


def api_key(args: argparse.Namespace) -> str | None:
    """The write key from --api-key-file or the environment (never printed)."""
    from cmhash.data.dataset import DataError

    if args.api_key_file:
        try:
            key = open(args.api_key_file).read().strip()
        except OSError as exc:
            raise DataError(f"cannot read the API key file ({exc.strerror})", source=args.api_key_file) from None
        if not key:
            raise DataError("API key file is empty", source=args.api_key_file)
        return key
    return os.environ.get(API_KEY_ENV) or None


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from cmhash.service.app import create_app
    from cmhash.service.limits import Limits

    limits = Limits(args.max_body_bytes, args.max_text_chars, args.max_image_pixels, args.max_k)
    key = api_key(args)
    retriever = open_retriever(args)
    try:
        app = create_app(retriever, limits=limits, api_key=key, image_root=args.images)
        print(f"search page: http://{args.host}:{args.port}/  (writes {'on' if key else 'off'})", flush=True)
        uvicorn.run(app, host=args.host, port=args.port)
    finally:
        retriever.close()
    return 0
