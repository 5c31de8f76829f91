"""Methods by name: ``@register`` on a class, ``get_method("ddss")`` to find it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cmhash.methods.base import HashMethod

_REGISTRY: dict[str, type["HashMethod"]] = {}

# The methods of the five founding papers (the rest are the baselines beside them).
FOUNDING = ("ddss", "dhsl", "sdeh", "cdhtk", "fjsph")


def register(cls: type["HashMethod"]) -> type["HashMethod"]:
    """Class decorator: make a method available by its ``name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"method name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def get_method(name: str) -> type["HashMethod"]:
    import cmhash.methods  # noqa: F401  (importing the package registers every method)

    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; available: {', '.join(available_methods())}") from None


def available_methods() -> list[str]:
    import cmhash.methods  # noqa: F401

    return list(_REGISTRY)
