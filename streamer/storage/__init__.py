"""Where backups are kept: S3 (any S3-compatible endpoint) or a local directory.

:func:`open_storage` turns a ``s3://bucket/key`` or ``file:///path`` URL into a
:class:`~streamer.storage.base.Storage` and the object's key.
"""

from streamer.storage.base import ObjectReader, ObjectWriter, S3Settings, Storage, open_storage

__all__ = ["ObjectReader", "ObjectWriter", "S3Settings", "Storage", "open_storage"]
