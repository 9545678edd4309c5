"""Registries: extension points looked up by name, with a duplicate check."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from tabular.exceptions import RegistryError

__all__ = ["ENCODERS", "Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object mapping filled by the :meth:`register` decorator.

    Examples
    --------
    >>> reg: Registry[type] = Registry("widgets")
    >>> @reg.register("plain")
    ... class Plain: ...
    >>> reg.get("plain") is Plain
    True
    >>> reg.unregister("plain") is Plain, "plain" in reg
    (True, False)
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering an object under ``name``; a second use of a name is an error."""

        def decorator(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise RegistryError(
                    f"{self.kind} {name!r} is already registered (by {self._items[name]!r}); "
                    "choose another name"
                )
            self._items[name] = obj
            return obj

        return decorator

    def unregister(self, name: str) -> T:
        """Remove ``name`` and return the object it was registered with.

        For entries that are wanted for a while only (a plug-in switched off, a test).
        """
        try:
            return self._items.pop(name)
        except KeyError:
            raise RegistryError(
                f"{self.kind} {name!r} is not registered; registered: {sorted(self._items)}"
            ) from None

    def get(self, name: str) -> T:
        """The object registered as ``name``."""
        try:
            return self._items[name]
        except KeyError:
            raise RegistryError(
                f"unknown {self.kind} {name!r}; available: {sorted(self._items)}"
            ) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))


ENCODERS: Registry[type] = Registry("encoder")
"""Tabular encoder network classes by name (``ft-transformer``, ``linear``, ``mlp``, ``tabnet``,
registered when :mod:`tabular.encoders` is imported)."""
