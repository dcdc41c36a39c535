"""A name → builder table (BasicSR-style): ``@REGISTRY.register("name")`` adds a builder, once per name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from .errors import ModelError

T = TypeVar("T")


class Registry(Generic[T]):
    """Builders of one ``kind`` of thing (``"model"``, ``"block"``) by name, in registration order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding a builder under ``name``; a name taken already is a ``ValueError``."""

        def decorator(builder: T) -> T:
            if name in self._builders:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._builders[name] = builder
            return builder

        return decorator

    def unregister(self, name: str) -> None:
        """Remove ``name`` if it is registered."""
        self._builders.pop(name, None)

    def get(self, name: str) -> T:
        """The builder of ``name``; a :class:`ModelError` naming the choices if there is none."""
        if name not in self._builders:
            raise ModelError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self._builders)}")
        return self._builders[name]

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._builders)
