"""Stream stages: gzip compression and age encryption, each a file-like object or a function
from a reader to a writer, so they compose with any source and any storage."""

__all__: list[str] = []
