"""The control plane of backup-operator: the BackupStorage, BackupSchedule and BackupRun API,
and its translation into Argo Workflows objects.

Dependencies point one way: :mod:`generator.cli` → :mod:`generator.generate` →
:mod:`generator.render` / :mod:`generator.checks` / :mod:`generator.crds` /
:mod:`generator.yamlio` → :mod:`generator.models` → :mod:`generator.podtemplate` →
:mod:`generator.errors`; YAML text exists only in :mod:`generator.yamlio`. Everything below the
CLI is pure (no Kubernetes client, no S3 client, no subprocess), so the controller can reuse the
same decisions. The import-linter contracts in ``pyproject.toml`` hold these rules.
"""

__all__: list[str] = []
