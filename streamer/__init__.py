"""The data plane of backup-operator: stream a command's output through gzip and age into
storage, and back into a command's input, with nothing staged on disk.

The public entry points are :func:`streamer.pipeline.backup`, :func:`streamer.pipeline.restore`
and :func:`streamer.pipeline.verify`; the ``streamer`` command wraps them.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
