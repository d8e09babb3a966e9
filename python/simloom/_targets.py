"""Naming a program to run: ``package.module:function`` or
``path/to/file.py:function`` (``function`` may be dotted: ``Class.method``).

Owns: importing the module or file a target names and finding the attribute in it.
Must not: run what it finds (``cli`` explores it, ``_soak`` soaks it).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

from .errors import SimloomUsageError

__all__ = ["load_async_function", "load_attribute"]


def _bad(message: str) -> NoReturn:
    raise SimloomUsageError(message)


def load_async_function(target: str) -> Callable[..., Awaitable[Any]]:
    """The async function ``module:function`` or ``file.py:function`` names."""
    function = load_attribute(target)
    if not inspect.iscoroutinefunction(function):
        _bad(f"target {target!r} is not an async function (async def)")
    return function  # type: ignore[no-any-return]


def load_attribute(target: str) -> Any:
    """What ``module:name`` or ``file.py:name`` (``name`` may be dotted) names."""
    where, sep, name = target.rpartition(":")
    if not sep or not where or not name:
        _bad(f"target {target!r} is not MODULE:FUNCTION or FILE.py:FUNCTION")
    module: Any
    if where.endswith(".py") or os.sep in where or "/" in where:
        path = Path(where)
        if not path.is_file():
            _bad(f"target {target!r}: no such file: {where}")
        directory = str(path.resolve().parent)
        if directory not in sys.path:
            sys.path.insert(0, directory)
        module_name = path.stem if path.suffix == ".py" else path.name
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            _bad(f"target {target!r}: {where} is not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        _run_import(target, lambda: spec.loader.exec_module(module))  # type: ignore[union-attr]
    else:
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        module = _run_import(target, lambda: importlib.import_module(where))
    function: Any = module
    for part in name.split("."):
        try:
            function = getattr(function, part)
        except AttributeError:
            _bad(f"target {target!r}: {where} has no {name!r}")
    return function


def _run_import(target: str, load: Callable[[], Any]) -> Any:
    try:
        return load()
    except ModuleNotFoundError as exc:
        _bad(f"target {target!r}: no module named {exc.name!r}")
    except Exception as exc:
        _bad(f"target {target!r}: importing it raised {type(exc).__name__}: {exc}")
