"""Binary codes in PostgreSQL with pgvector: exact Hamming search, HNSW approximate search.

(Naming: this module is ``cmhash.index.pgvector``, as the spec says. Absolute imports mean its
``from pgvector...`` lines still reach the PyPI package, not this file; the only way to shadow it
would be running this file as a script, which nothing does.)

Table ``<table>``: ``(modality text, id bigint, seq bigint identity, code bit(n), metadata jsonb)``,
primary key ``(modality, id)``: one row per item per modality, so a cross-modal service keeps the
image and the text codes of its items side by side and searches the other modality. ``seq`` is
the insertion order, used as the tie-break so exact results equal :class:`HashIndex`'s.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import psycopg
from pgvector import Bit
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.types.json import Jsonb

from cmhash.data.dataset import DataError
from cmhash.index.code_input import check_bits, int_ids, new_ids, packed_codes, positive_int, radius_value
from cmhash.index.hash_index import MISSING_DISTANCE, MISSING_ID
from cmhash.index.pg_server import embedded_server

DEFAULT_MODALITY = "default"
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,50}")


def connect(dsn: str) -> psycopg.Connection:
    """An autocommit connection; an unreachable server is a message naming it (password hidden), not a traceback."""
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        shown = re.sub(r"(password=)\S+|(://[^:/@]*:)[^@]*@", lambda m: (m.group(1) or m.group(2)) + "***"
                       + ("" if m.group(1) else "@"), dsn)
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot connect to PostgreSQL at {shown!r}: {reason}", field="dsn") from None


class PgVectorStore:
    """The :class:`HashIndex` interface over a PostgreSQL table; every call takes a ``modality``.

    ``dsn=None`` starts the embedded server (see :mod:`cmhash.index.pg_server`) on ``datadir``.
    """

    def __init__(self, dsn: str | None = None, table: str = "cmhash_codes", *, bits: int,
                 datadir: str | os.PathLike | None = None):
        self.bits = check_bits(bits)
        if not _TABLE_NAME.fullmatch(table):
            raise ValueError(f"table must be a lower-case SQL identifier (a-z, 0-9, _), got {table!r}")
        self.table = table
        self.server = embedded_server(datadir) if dsn is None else None
        self._conn = connect(dsn or self.server.get_uri())
        self._conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(self._conn)
        self._create_table()

    def _sql(self, template: str, **parts: Any) -> sql.Composed:
        return sql.SQL(template).format(table=sql.Identifier(self.table), **parts)

    def _create_table(self) -> None:
        self._conn.execute(self._sql(
            "CREATE TABLE IF NOT EXISTS {table} (modality text NOT NULL, id bigint NOT NULL, "
            "seq bigint GENERATED ALWAYS AS IDENTITY, code bit({bits}) NOT NULL, metadata jsonb, "
            "PRIMARY KEY (modality, id))", bits=sql.Literal(self.bits)))
        (found,) = self._conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attname = 'code'", (self.table,)).fetchone()
        if found != f"bit({self.bits})":
            raise ValueError(f"table {self.table!r} holds codes of type {found}, not bit({self.bits})")

    def add_with_ids(self, codes: np.ndarray, ids: np.ndarray, *, modality: str = DEFAULT_MODALITY,
                     metadata: Sequence[dict[str, Any] | None] | None = None) -> None:
        """Insert by binary COPY in one transaction; an (modality, id) already present adds nothing."""
        x = packed_codes(codes, self.bits)
        ids = new_ids(ids, len(x))
        if metadata is not None and len(metadata) != len(x):
            raise ValueError(f"metadata must hold one entry per code: {len(metadata)} for {len(x)} codes")
        extra = metadata if metadata is not None else [None] * len(x)
        copy_sql = self._sql("COPY {table} (modality, id, code, metadata) FROM STDIN (FORMAT BINARY)")
        try:
            with self._conn.transaction(), self._conn.cursor() as cur, cur.copy(copy_sql) as copy:
                copy.set_types(["text", "int8", "bit", "jsonb"])
                for i, code, meta in zip(ids.tolist(), x, extra):
                    copy.write_row((modality, i, Bit(code.tobytes()), None if meta is None else Jsonb(meta)))
        except psycopg.errors.UniqueViolation as e:
            raise ValueError(f"table {self.table!r}: {e.diag.message_detail} Remove it first.") from None

    def remove_ids(self, ids: np.ndarray, *, modality: str | Sequence[str] = DEFAULT_MODALITY) -> int:
        """Delete the given ids of ``modality`` (or of each of several), in one statement; returns the rows removed."""
        ids = int_ids(ids)
        modalities = [modality] if isinstance(modality, str) else list(modality)
        cur = self._conn.execute(self._sql("DELETE FROM {table} WHERE modality = ANY(%s) AND id = ANY(%s)"),
                                 (modalities, ids.tolist()))
        return cur.rowcount

    def drop(self) -> None:
        """Remove the table (and its HNSW index) entirely, e.g. to rebuild after a build that stopped half-way."""
        self._conn.execute(self._sql("DROP TABLE IF EXISTS {table}"))

    def search(self, codes: np.ndarray, k: int, *, modality: str = DEFAULT_MODALITY, exact: bool = True,
               ef_search: int = 100) -> tuple[np.ndarray, np.ndarray]:
        """k nearest by Hamming distance: (distances, ids), each (Q, k) padded with ``MISSING_DISTANCE``
        / ``MISSING_ID`` where fewer than k rows exist.

        ``exact=True``: a full scan ordered by (distance, insertion order) — equal to HashIndex.
        ``exact=False``: the HNSW index (see :meth:`build_hnsw`) with ``hnsw.ef_search``; filtered by
        modality with pgvector's strict-order iterative scan, so k rows come back when they exist.
        """
        q = packed_codes(codes, self.bits, "queries")
        k = positive_int(k, "k")
        if exact:
            query = self._sql("SELECT id, (code <~> %(q)s)::int AS d FROM {table} WHERE modality = %(m)s "
                              "ORDER BY d, seq LIMIT %(k)s")
        else:
            query = self._sql("SELECT id, (code <~> %(q)s)::int FROM {table} WHERE modality = %(m)s "
                              "ORDER BY code <~> %(q)s LIMIT %(k)s")
        ids = np.full((len(q), k), MISSING_ID, dtype=np.int64)
        distances = np.full((len(q), k), MISSING_DISTANCE, dtype=np.int32)
        with self._conn.transaction(), self._conn.cursor() as cur:
            if not exact:
                cur.execute("SELECT set_config('hnsw.ef_search', %s, true), "
                            "set_config('hnsw.iterative_scan', 'strict_order', true)",
                            (str(positive_int(ef_search, "ef_search")),))
            for row, (dist, found) in enumerate(self._each_query(cur, query, q, modality=modality, k=k)):
                ids[row, :len(found)], distances[row, :len(found)] = found, dist
        return distances, ids

    def range_search(self, codes: np.ndarray, radius: int, *,
                     modality: str = DEFAULT_MODALITY) -> list[tuple[np.ndarray, np.ndarray]]:
        """All items within Hamming distance <= radius, per query (distances, ids), HashIndex order."""
        q = packed_codes(codes, self.bits, "queries")
        query = self._sql("SELECT id, (code <~> %(q)s)::int AS d FROM {table} "
                          "WHERE modality = %(m)s AND code <~> %(q)s <= %(r)s ORDER BY d, seq")
        with self._conn.cursor() as cur:
            return list(self._each_query(cur, query, q, modality=modality,
                                         r=radius_value(radius, self.bits)))

    def _each_query(self, cur: psycopg.Cursor, query: sql.Composed, q: np.ndarray,
                    modality: str, **params: Any) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for code in q:
            rows = cur.execute(query, {"q": Bit(code.tobytes()), "m": modality, **params}).fetchall()
            pairs = np.array(rows, dtype=np.int64).reshape(-1, 2)
            yield pairs[:, 1].astype(np.int32), pairs[:, 0]

    def get_metadata(self, ids: np.ndarray, *, modality: str = DEFAULT_MODALITY) -> list[dict[str, Any] | None]:
        """The metadata stored with each id (None where none was stored); an absent id is a KeyError."""
        ids = int_ids(ids)
        rows = self._conn.execute(self._sql("SELECT id, metadata FROM {table} WHERE modality = %s AND id = ANY(%s)"),
                                  (modality, ids.tolist())).fetchall()
        found = dict(rows)
        missing = [i for i in ids.tolist() if i not in found]
        if missing:
            raise KeyError(f"table {self.table!r} has no ({modality}, {missing[0]}) ({len(missing)} ids missing)")
        return [found[i] for i in ids.tolist()]

    def build_hnsw(self, m: int = 16, ef_construction: int = 64) -> None:
        """Create the HNSW index over the codes (pgvector defaults m=16, ef_construction=64).

        Also ANALYZEs the table: without statistics the planner may prefer a scan + sort.
        """
        self._conn.execute(self._sql(
            "CREATE INDEX IF NOT EXISTS {name} ON {table} USING hnsw (code bit_hamming_ops) "
            "WITH (m = {m}, ef_construction = {ef})", name=sql.Identifier(f"{self.table}_hnsw"),
            m=sql.Literal(positive_int(m, "m")), ef=sql.Literal(positive_int(ef_construction, "ef_construction"))))
        self._conn.execute(self._sql("ANALYZE {table}"))

    def count(self, modality: str | None = None) -> int:
        """Rows of one modality, or of all when ``modality`` is None."""
        where = sql.SQL("WHERE modality = %s") if modality is not None else sql.SQL("")
        query = sql.SQL("SELECT count(*) FROM {table} {where}").format(table=sql.Identifier(self.table),
                                                                        where=where)
        return int(self._conn.execute(query, (modality,) if modality is not None else ()).fetchone()[0])

    @property
    def ntotal(self) -> int:
        return self.count()

    def __len__(self) -> int:
        return self.count()

    def close(self) -> None:
        """Close the connection; an embedded server keeps running until its last user process exits."""
        self._conn.close()

    def __enter__(self) -> PgVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
