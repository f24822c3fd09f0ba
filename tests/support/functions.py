"""A function's ``app.py``, imported the way tests need it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_app(path: Path) -> ModuleType:
    """Import a function's app.py by file path (the module name is unique; sys.path is untouched)."""
    name = f"_layout_{path.parent.name}_app"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module
