"""The command runs in a container of a Pod, reached through the Kubernetes ``pods/exec`` API.

This package is the only part of the streamer that imports :mod:`kubernetes` and
:mod:`websocket`, and within it only the modules that talk to them do:

- :mod:`.api` -- :class:`ExecRunner`: its settings, the Pod's readiness, the server's version,
  and the WebSocket handshake (kubernetes, websocket);
- :mod:`.credentials` -- service account or kubeconfig, and the default namespace (kubernetes);
- :mod:`.retry` -- the one retry policy for the API, and what counts as transient;
- :mod:`.command` -- :class:`ExecCommand`: the frame loop, stderr, the Status, pings, kill
  (websocket);
- :mod:`.stdin` -- a restore's input: the bounded queue and the sender thread;
- :mod:`.frames` -- WebSocket frames built and masked here, and the one wrapper that writes them
  under websocket-client;
- :mod:`.state` -- how the connection ended, recorded once, so errors are judged by state;
- :mod:`.protocol` -- the exec subprotocols' channels, and reading the exit Status.

Errors are those of :mod:`streamer.errors`: :class:`~streamer.errors.ConfigError` for
settings and credentials, :class:`~streamer.errors.SourceError` for everything else
(:class:`~streamer.errors.StdinClosed` when a restore's input can no longer arrive). kubernetes,
urllib3 and websocket-client exceptions are translated where they are raised; none leaves the
package.
"""

from streamer.sources.exec.api import DEFAULT_READY_TIMEOUT, ExecRunner
from streamer.sources.exec.command import DEFAULT_PING_INTERVAL, ExecCommand
from streamer.sources.exec.frames import mask_in_place
from streamer.sources.exec.protocol import parse_status

__all__ = [
    "DEFAULT_PING_INTERVAL",
    "DEFAULT_READY_TIMEOUT",
    "ExecCommand",
    "ExecRunner",
    "mask_in_place",
    "parse_status",
]
