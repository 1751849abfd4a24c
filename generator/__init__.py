"""The control plane of backup-operator: the BackupStorage, BackupSchedule and BackupRun API,
and its translation into Argo Workflows objects.

Dependencies point one way: :mod:`generator.cli` → :mod:`generator.generate` →
:mod:`generator.render` / :mod:`generator.checks` / :mod:`generator.crds` →
:mod:`generator.models` / :mod:`generator.podtemplate` → :mod:`generator.errors`; YAML text
exists only in :mod:`generator.yamlio`. Everything below the CLI is pure, so the controller can
reuse the same decisions.
"""

__all__: list[str] = []
