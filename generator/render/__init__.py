"""Translation of the API into Argo Workflows objects, built as hera models.

:mod:`generator.render.pod` builds the one Pod (Argo template) of an action;
:mod:`generator.render.workflow` wraps it into CronWorkflows, WorkflowTemplates and Workflows;
:mod:`generator.render.drill` builds a restore drill's, from the same parts;
:mod:`generator.render.meta` holds the options and metadata they all share.
"""

from generator.render.drill import DRILL_OUTPUTS, DRILL_TEMPLATE, SHA256_PARAMETER, render_drill
from generator.render.meta import (
    ARGO_API_VERSION,
    DEFAULT_IMAGE,
    DEFAULT_SERVICE_ACCOUNT,
    RenderOptions,
)
from generator.render.pod import OUTPUT_PARAMETERS, SIDECAR_GRACE_SECONDS, k8s_literal
from generator.render.workflow import ArgoObject, render_objects, render_run, render_schedule

__all__ = [
    "ARGO_API_VERSION",
    "DEFAULT_IMAGE",
    "DEFAULT_SERVICE_ACCOUNT",
    "DRILL_OUTPUTS",
    "DRILL_TEMPLATE",
    "OUTPUT_PARAMETERS",
    "SHA256_PARAMETER",
    "SIDECAR_GRACE_SECONDS",
    "ArgoObject",
    "RenderOptions",
    "k8s_literal",
    "render_drill",
    "render_objects",
    "render_run",
    "render_schedule",
]
