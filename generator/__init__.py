"""The control plane of backup-operator: the BackupStorage, BackupSchedule and BackupRun API,
and its translation into Argo Workflows objects."""

__all__: list[str] = []
