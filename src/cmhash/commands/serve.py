"""``cmhash serve``: the retrieval HTTP API (docs/retrieval.md) with uvicorn, on loopback by default."""

from __future__ import annotations

import argparse

from cmhash.commands.search import add_retriever_args, open_retriever


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve search over HTTP (FastAPI + uvicorn)",
                       description="Load the model, index and optional CLIP encoder once, then answer "
                                   "GET /health, GET /info, POST /search/{text,image,features,codes}. "
                                   "Listens on 127.0.0.1 unless --host says otherwise; there is no "
                                   "authentication, so expose it only behind something that adds it.")
    add_retriever_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from cmhash.service.app import create_app

    retriever = open_retriever(args)
    try:
        uvicorn.run(create_app(retriever), host=args.host, port=args.port)
    finally:
        retriever.close()
    return 0
