"""A synthetic, deterministic SQL dump, as ``mysqldump`` writes one, of any size.

Rows are built from a pool of random fields (names, e-mails, UUIDs, amounts, timestamps,
free text) so the stream compresses like a real dump (gzip -6 ≈ 2.6x) instead of like a
repeated block, and is generated fast enough not to be the bottleneck of a benchmark.

    python -m bench.corpus SIZE   # writes SIZE bytes (e.g. 1G, 256M) to stdout
"""

from __future__ import annotations

import random
import sys
import uuid
from collections.abc import Iterator

__all__ = ["chunks", "parse_size"]

_WORDS = (  # noqa: SIM905 (a sentence reads better than 60 quoted words)
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
    "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu order "
    "invoice payment shipped pending refund customer account premium basic standard express "
    "warehouse berlin paris london madrid tokyo sydney toronto chicago lagos mumbai"
).split()


def _pool(rng: random.Random, n: int) -> list[bytes]:
    rows = []
    for _ in range(n):
        first, last = rng.choice(_WORDS).title(), rng.choice(_WORDS).title()
        note = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(0, 12)))
        rows.append(
            (
                f"'{first} {last}',"
                f"'{first.lower()}.{last.lower()}{rng.randint(1, 999)}@example.com',"
                f"'{uuid.UUID(int=rng.getrandbits(128))}',{rng.randint(0, 10**7) / 100:.2f},"
                f"'20{rng.randint(10, 25)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
                f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}',"
                f"'{rng.choice(_WORDS)}',{rng.randint(0, 1)},'{note}'"
            ).encode()
        )
    return rows


_HEADER = (
    b"-- MariaDB dump 10.19  Distrib 10.11, for debian-linux-gnu (x86_64)\n--\n"
    b"-- Host: 127.0.0.1    Database: shop\n"
    b"/*!40101 SET NAMES utf8mb4 */;\n\nDROP TABLE IF EXISTS `orders`;\n"
    b"CREATE TABLE `orders` (\n  `id` bigint NOT NULL,\n  `name` varchar(80),\n"
    b"  `email` varchar(120),\n  `ref` char(36),\n  `amount` decimal(12,2),\n"
    b"  `created` datetime,\n  `status` varchar(20),\n  `paid` tinyint,\n  `note` text,\n"
    b"  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n\n"
    b"LOCK TABLES `orders` WRITE;\n"
)


def chunks(size: int, seed: int = 1, rows_per_insert: int = 200) -> Iterator[bytes]:
    """Yield exactly ``size`` bytes of dump in chunks of about 1 MiB."""
    rng = random.Random(seed)
    pool = _pool(rng, 50_000)
    picks = [rng.randrange(len(pool)) for _ in range(1 << 16)]
    remaining, row_id, pick = size, 0, 0
    out = bytearray(_HEADER)
    while remaining > 0:
        while len(out) < 1 << 20:
            parts = []
            for _ in range(rows_per_insert):
                row_id += 1
                parts.append(
                    b"(%d,%s)" % (row_id, pool[(picks[pick & 0xFFFF] + row_id) % len(pool)])
                )
                pick += 1
            out += b"INSERT INTO `orders` VALUES " + b",".join(parts) + b";\n"
        piece = bytes(out[:remaining])
        del out[: len(piece)]
        remaining -= len(piece)
        yield piece


def parse_size(text: str) -> int:
    """``1G``, ``256M``, ``64K`` or a plain number of bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


if __name__ == "__main__":
    out = sys.stdout.buffer
    for chunk in chunks(parse_size(sys.argv[1] if len(sys.argv) > 1 else "64M")):
        out.write(chunk)
