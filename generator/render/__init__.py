"""Translation of the API into Argo Workflows objects, built as hera models.

:mod:`generator.render.pod` builds the one Pod (Argo template) of an action;
:mod:`generator.render.workflow` wraps it into CronWorkflows, WorkflowTemplates and Workflows.
"""

from generator.render.pod import OUTPUT_PARAMETERS, SIDECAR_GRACE_SECONDS, k8s_literal
from generator.render.workflow import (
    ARGO_API_VERSION,
    DEFAULT_IMAGE,
    DEFAULT_SERVICE_ACCOUNT,
    ArgoObject,
    RenderOptions,
    render_objects,
    render_run,
    render_schedule,
)

__all__ = [
    "ARGO_API_VERSION",
    "DEFAULT_IMAGE",
    "DEFAULT_SERVICE_ACCOUNT",
    "OUTPUT_PARAMETERS",
    "SIDECAR_GRACE_SECONDS",
    "ArgoObject",
    "RenderOptions",
    "k8s_literal",
    "render_objects",
    "render_run",
    "render_schedule",
]
