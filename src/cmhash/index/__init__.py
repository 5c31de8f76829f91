"""Search binary codes by Hamming distance: in memory (FAISS) or in PostgreSQL (pgvector)."""

from cmhash.index.hash_index import MISSING_DISTANCE, MISSING_ID, HashIndex
from cmhash.index.pgvector import PgVectorStore

__all__ = ["HashIndex", "PgVectorStore", "MISSING_DISTANCE", "MISSING_ID"]
