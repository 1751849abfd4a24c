"""The controller's decisions as pure functions: objects in; what to apply, patch, delete out.

Each module holds one decision and is tested without an API server;
:mod:`generator.controller.rotation` decides which finished runs of a schedule to delete.
"""

__all__: list[str] = []
