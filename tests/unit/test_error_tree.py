"""One error tree: every exception birdbalance defines sits under ``BirdbalanceError``,
and the tree drawn in ``birdbalance.errors``' docstring is the real one."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import birdbalance
from birdbalance import errors
from birdbalance.errors import BirdbalanceError

_NODE = re.compile(r"^(?P<indent>[ │├└─]*)(?P<name>[A-Z]\w+)\b")


def _defined() -> dict[str, type[BaseException]]:
    """Every exception class defined in a birdbalance module (private ones too)."""
    found: dict[str, type[BaseException]] = {}
    for module_info in pkgutil.walk_packages(birdbalance.__path__, "birdbalance."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == module.__name__:
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


def _drawn() -> dict[str, str | None]:
    """The docstring's tree: each name and its parent's."""
    text = errors.__doc__ or ""
    lines = text.split("::", 1)[1].split("\n\n")[1].splitlines()
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in lines:
        match = _NODE.match(line.strip("\n")[4:])
        assert match, line
        depth = len(match["indent"])
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[match["name"]] = stack[-1][1] if stack else None
        stack.append((depth, match["name"]))
    return parents


def test_every_exception_sits_under_the_root() -> None:
    outside = [name for name, cls in _defined().items() if not issubclass(cls, BirdbalanceError)]
    assert outside == []


def test_the_drawn_tree_is_the_real_one() -> None:
    drawn = _drawn()
    public = {cls.__name__: cls for cls in _defined().values() if not cls.__name__.startswith("_")}
    assert set(drawn) == set(public)
    for name, parent in drawn.items():
        real = [b.__name__ for b in public[name].__bases__ if issubclass(b, BirdbalanceError)]
        assert real == ([parent] if parent else []), (name, real, parent)
