"""Errors the engine raises for bad input: each names the field path it is about."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    path: str  # dotted path into the spec, e.g. "sweep.params.params.top_p"
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(ValueError):
    """An invalid experiment spec. Carries every problem found, not just the first."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))

    @classmethod
    def at(cls, path: str, message: str) -> SpecError:
        return cls([FieldError(path, message)])
