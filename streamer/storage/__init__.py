"""Where backups are kept: S3 (any S3-compatible endpoint) or a local directory.

:func:`open_storage` turns a ``s3://bucket/key`` or ``file:///path`` URL into a
:class:`~streamer.storage.base.Storage` and the object's key::

    base       the contract: Storage, ObjectWriter (commit or abort), ObjectReader
    settings   S3Settings, how to reach S3 (no boto3)
    urls       open_storage, the URL -> storage factory
    file       FileStorage, objects as files renamed into place on commit
    s3/        S3Storage, the only package that imports boto3 and botocore
"""

from streamer.storage.base import ObjectReader, ObjectWriter, Storage
from streamer.storage.settings import S3Settings
from streamer.storage.urls import open_storage

__all__ = ["ObjectReader", "ObjectWriter", "S3Settings", "Storage", "open_storage"]
