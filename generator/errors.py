"""Every error the generator raises on purpose, in one tree.

The CLI and the controller catch :class:`GeneratorError` and show its message; a user never sees
a traceback for a mistake in their own objects::

    GeneratorError
    ├── InputError          the input is not a stream of Kubernetes objects (file, YAML, kind)
    └── ValidationFailed    the objects parse, but break one or more rules; ``problems`` lists
                            each one with its object and field path

Messages name the object and the field path and say what is expected; they never contain a
secret value (the API holds only references to Secrets, never their data).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["GeneratorError", "InputError", "Problem", "ValidationFailed"]


class GeneratorError(Exception):
    """Base of every error the generator raises on purpose."""


class InputError(GeneratorError):
    """The input could not be read as Kubernetes objects of a known kind."""


@dataclass(frozen=True, order=True)
class Problem:
    """One broken rule: which object, which field, what is wrong."""

    #: ``Kind/name`` of the object, or the input document when it has no usable name.
    obj: str
    #: Dotted field path inside the object, e.g. ``spec.template.spec.backup.container``.
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.obj}: {self.path}" if self.path else self.obj
        return f"{where}: {self.message}"


class ValidationFailed(GeneratorError):
    """The objects break one or more rules; every problem is reported, not just the first."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
