"""What the controller is told at start (``backup-gen controller`` options), as one value."""

from __future__ import annotations

from dataclasses import dataclass

from generator.render import DEFAULT_IMAGE, DEFAULT_SERVICE_ACCOUNT

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    #: The streamer image of the rendered Workflows.
    image: str = DEFAULT_IMAGE
    #: The ServiceAccount the rendered Workflows run as.
    service_account: str = DEFAULT_SERVICE_ACCOUNT
    #: How long past its deadline a Workflow that still runs gets before its run is Failed.
    deadline_grace_seconds: float = 300.0
    #: How often each BackupStorage's bucket is checked.
    storage_check_interval: float = 300.0
    #: How long one bucket check may take.
    storage_check_timeout: float = 10.0
