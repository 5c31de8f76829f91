"""Retrieval as a service: build an index from a model and a dataset, search it from Python, the CLI or HTTP.

``create_app`` lives in :mod:`cmhash.service.app` (imports FastAPI), not here, so the CLI's search
does not pay for the web stack.
"""

from cmhash.service.build import DatasetRef, build_index
from cmhash.service.retriever import EncoderMissing, Results, Retriever
from cmhash.service.stores import FileStore, Hit, PgLocation, PgStore

__all__ = ["DatasetRef", "EncoderMissing", "FileStore", "Hit", "PgLocation", "PgStore", "Results", "Retriever",
           "build_index"]
