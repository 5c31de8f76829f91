"""Hashing methods, one module each, registered by name (see ``registry``).

Every module in this package is imported here, so a new method only needs its module
and the ``@register`` decorator.
"""

import importlib
import pkgutil

from cmhash.methods.base import HashMethod
from cmhash.methods.registry import available_methods, get_method, register

for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["HashMethod", "available_methods", "get_method", "register"]
