"""Where the user's command runs: a local process, or a container reached by Kubernetes exec.

Both implement :class:`~streamer.sources.base.Runner`; the pipeline only sees that interface.
"""

from streamer.sources.base import Command, ExitStatus, Mode, Runner

__all__ = ["Command", "ExitStatus", "Mode", "Runner"]
