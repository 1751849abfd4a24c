"""A synthetic, deterministic SQL dump of any size, as ``mysqldump`` or ``pg_dump`` writes one.

The demo (:mod:`streamer.demo`) backs one up, and the benchmarks (``bench/``) measure on it;
it ships with the package so the demo runs from an installed wheel.

Rows are built from a pool of random fields (names, e-mails, UUIDs, amounts, timestamps,
free text) so the stream compresses like a real dump (gzip -6 ≈ 2.6x) instead of like a
repeated block, and is generated fast enough not to be the bottleneck of a benchmark.

:func:`chunks` gives exactly ``size`` bytes of the MySQL flavour, cut wherever the size ends:
a stream to back up, not to load. :func:`dump` gives a dump a database loads, whole
statements and a trailer, in one of two flavours:

- ``mysql``: what ``mysqldump`` writes by default, a ``CREATE TABLE`` with its primary key
  and multi-row ``INSERT`` statements of 200 rows (each one a transaction under autocommit)
  inside ``LOCK TABLES``;
- ``postgres``: what ``pg_dump`` writes by default, a ``CREATE TABLE``, one
  ``COPY … FROM stdin`` of tab-separated rows, then the primary key.

::

    python -m streamer.sample SIZE                # SIZE bytes (e.g. 1G, 256M) of chunks()
    python -m streamer.sample SIZE mysql|postgres  # a loadable dump() of about SIZE bytes
"""

from __future__ import annotations

import random
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

__all__ = ["DIALECTS", "Dialect", "Dump", "chunks", "dump", "parse_size"]

Dialect = Literal["mysql", "postgres"]
DIALECTS: tuple[Dialect, ...] = ("mysql", "postgres")
ROWS_PER_INSERT = 200
_PIECE = 1 << 20

_WORDS = (  # noqa: SIM905 (a sentence reads better than 60 quoted words)
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
    "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu order "
    "invoice payment shipped pending refund customer account premium basic standard express "
    "warehouse berlin paris london madrid tokyo sydney toronto chicago lagos mumbai"
).split()


def _fields(rng: random.Random, n: int) -> list[tuple[str, ...]]:
    """``n`` rows of field values (no id), drawn in a fixed order so every flavour and every
    run sees the same rows."""
    rows: list[tuple[str, ...]] = []
    for _ in range(n):
        first, last = rng.choice(_WORDS).title(), rng.choice(_WORDS).title()
        note = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(0, 12)))
        email = f"{first.lower()}.{last.lower()}{rng.randint(1, 999)}@example.com"
        ref = str(uuid.UUID(int=rng.getrandbits(128)))
        amount = f"{rng.randint(0, 10**7) / 100:.2f}"
        created = (
            f"20{rng.randint(10, 25)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
        )
        status, paid = rng.choice(_WORDS), str(rng.randint(0, 1))
        rows.append((f"{first} {last}", email, ref, amount, created, status, paid, note))
    return rows


def _sql_values(row: tuple[str, ...]) -> bytes:
    name, email, ref, amount, created, status, paid, note = row
    return f"'{name}','{email}','{ref}',{amount},'{created}','{status}',{paid},'{note}'".encode()


def _copy_values(row: tuple[str, ...]) -> bytes:
    return "\t".join(row).encode()  # the pool holds no tab, newline or backslash to escape


_MYSQL_HEADER = (
    b"-- MariaDB dump 10.19  Distrib 10.11, for debian-linux-gnu (x86_64)\n--\n"
    b"-- Host: 127.0.0.1    Database: shop\n"
    b"/*!40101 SET NAMES utf8mb4 */;\n\nDROP TABLE IF EXISTS `orders`;\n"
    b"CREATE TABLE `orders` (\n  `id` bigint NOT NULL,\n  `name` varchar(80),\n"
    b"  `email` varchar(120),\n  `ref` char(36),\n  `amount` decimal(12,2),\n"
    b"  `created` datetime,\n  `status` varchar(20),\n  `paid` tinyint,\n  `note` text,\n"
    b"  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n\n"
    b"LOCK TABLES `orders` WRITE;\n"
)
_MYSQL_TRAILER = b"UNLOCK TABLES;\n\n-- Dump completed\n"

_POSTGRES_HEADER = (
    b"--\n-- PostgreSQL database dump\n--\n\n"
    b"SET statement_timeout = 0;\nSET client_encoding = 'UTF8';\n"
    b"SET standard_conforming_strings = on;\nSET client_min_messages = warning;\n\n"
    b"DROP TABLE IF EXISTS public.orders;\n"
    b"CREATE TABLE public.orders (\n    id bigint NOT NULL,\n    name character varying(80),\n"
    b"    email character varying(120),\n    ref character(36),\n    amount numeric(12,2),\n"
    b"    created timestamp without time zone,\n    status character varying(20),\n"
    b"    paid smallint,\n    note text\n);\n\n"
    b"COPY public.orders (id, name, email, ref, amount, created, status, paid, note) FROM stdin;\n"
)
_POSTGRES_TRAILER = (
    b"\\.\n\n\nALTER TABLE ONLY public.orders\n"
    b"    ADD CONSTRAINT orders_pkey PRIMARY KEY (id);\n\n"
    b"--\n-- PostgreSQL database dump complete\n--\n"
)


class _Rows:
    """The endless sequence of rows, each with its id; the same for every flavour."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)  # noqa: S311 -- sample data, not secrets
        self._pool = _fields(rng, 50_000)
        self._sql = [_sql_values(row) for row in self._pool]
        self._copy = [_copy_values(row) for row in self._pool]
        self._picks = [rng.randrange(len(self._pool)) for _ in range(1 << 16)]
        self.count = 0

    def _next(self) -> tuple[int, int]:
        """The next row's id and its index in the pool."""
        row_id = self.count = self.count + 1
        return row_id, (self._picks[(row_id - 1) & 0xFFFF] + row_id) % len(self._pool)

    def insert(self) -> bytes:
        """One ``INSERT`` of :data:`ROWS_PER_INSERT` rows, with its newline."""
        parts = []
        for _ in range(ROWS_PER_INSERT):
            row_id, index = self._next()
            parts.append(b"(%d,%s)" % (row_id, self._sql[index]))
        return b"INSERT INTO `orders` VALUES " + b",".join(parts) + b";\n"

    def copy_lines(self) -> bytes:
        """:data:`ROWS_PER_INSERT` lines of ``COPY`` data."""
        lines = []
        for _ in range(ROWS_PER_INSERT):
            row_id, index = self._next()
            lines.append(b"%d\t%s\n" % (row_id, self._copy[index]))
        return b"".join(lines)


def chunks(size: int, seed: int = 1) -> Iterator[bytes]:
    """Yield exactly ``size`` bytes of MySQL dump in chunks of about 1 MiB."""
    rows = _Rows(seed)
    remaining = size
    out = bytearray(_MYSQL_HEADER)
    while remaining > 0:
        while len(out) < _PIECE:
            out += rows.insert()
        piece = bytes(out[:remaining])
        del out[: len(piece)]
        remaining -= len(piece)
        yield piece


@dataclass
class Dump:
    """A loadable dump being generated: iterate for its bytes; ``rows`` counts the rows
    given so far (all of them once the iteration ends)."""

    size: int
    dialect: Dialect
    seed: int = 1
    rows: int = 0

    def __iter__(self) -> Iterator[bytes]:
        rows = _Rows(self.seed)
        mysql = self.dialect == "mysql"
        header, trailer = (
            (_MYSQL_HEADER, _MYSQL_TRAILER) if mysql else (_POSTGRES_HEADER, _POSTGRES_TRAILER)
        )
        written, out = 0, bytearray(header)
        while written + len(out) < self.size:
            out += rows.insert() if mysql else rows.copy_lines()
            if len(out) >= _PIECE:
                written += len(out)
                self.rows = rows.count
                yield bytes(out)
                out.clear()
        self.rows = rows.count
        yield bytes(out + trailer)


def dump(size: int, dialect: Dialect, seed: int = 1) -> Dump:
    """A dump of ``dialect`` of about ``size`` bytes (whole statements: it ends with the
    statement that passes ``size``, then the trailer)."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}: use one of {', '.join(DIALECTS)}")
    return Dump(size, dialect, seed)


def parse_size(text: str) -> int:
    """``1G``, ``256M``, ``64K`` or a plain number of bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


if __name__ == "__main__":
    out = sys.stdout.buffer
    size = parse_size(sys.argv[1] if len(sys.argv) > 1 else "64M")
    flavour = sys.argv[2] if len(sys.argv) > 2 else None
    pieces = chunks(size) if flavour is None else dump(size, flavour)  # type: ignore[arg-type]
    for chunk in pieces:
        out.write(chunk)
