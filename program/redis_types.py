"""The Memorystore API's message types (`google.cloud.redis_v1.types.cloud_redis`) without its API clients.

The program only builds `Instance` messages (instance.py), but importing anything under
`google.cloud.redis_v1` runs the package's `__init__`, which imports the clients and with them
google-auth, requests and cryptography: about half a second of `policy-check`, as long as
importing Pulumi itself. So where that package is not imported yet, it is entered in
`sys.modules` with its `__init__` deferred: the types load as its submodules (the same module
objects a later full import uses, so one registration of each message), and the first name asked
of the package that a submodule import has not set (`redis_v1.CloudRedisClient`) runs its
`__init__` then, as an import would have. The drift engine and the emulator import the package
as usual and see no difference.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import TYPE_CHECKING, Any

PACKAGE = "google.cloud.redis_v1"


class _DeferredPackage(ModuleType):
    """`google.cloud.redis_v1` entered with its `__init__` not run yet; runs it on the first missing name."""

    _lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        # Dunder probes (the import system's, inspect's) do not need the clients.
        if name.startswith("__") and name not in ("__all__", "__version__"):
            raise AttributeError(name)
        with _DeferredPackage._lock:
            if type(self) is _DeferredPackage:
                object.__setattr__(self, "__class__", ModuleType)  # from now on a plain module: no second run
                assert self.__spec__ is not None and self.__spec__.loader is not None
                self.__spec__.loader.exec_module(self)
        return getattr(self, name)


def _types_without_clients() -> ModuleType:
    if PACKAGE not in sys.modules:
        spec = importlib.util.find_spec(PACKAGE)
        if spec is not None and spec.loader is not None:
            package = importlib.util.module_from_spec(spec)
            package.__class__ = _DeferredPackage
            sys.modules[PACKAGE] = package
            # `from google.cloud import redis_v1` reads the attribute, as after an import.
            setattr(importlib.import_module("google.cloud"), "redis_v1", package)  # noqa: B010
    return importlib.import_module(f"{PACKAGE}.types.cloud_redis")


if TYPE_CHECKING:
    from google.cloud.redis_v1.types import cloud_redis
else:
    cloud_redis = _types_without_clients()
