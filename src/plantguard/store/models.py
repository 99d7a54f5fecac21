"""Imports every module that defines tables, so Base.metadata knows them all."""
import importlib
import pkgutil

import plantguard.store as _pkg

for _info in pkgutil.iter_modules(_pkg.__path__):
    if _info.name.endswith("_tables"):
        importlib.import_module(f"plantguard.store.{_info.name}")
