"""Layering nested settings mappings: later layers win, groups (nested dicts) are merged key by key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def deep_merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """The ``layers`` merged, later over earlier: where two layers both hold a mapping under a key, the two
    are merged key by key (recursively); any other value of a later layer replaces the earlier one. The
    layers themselves are left unchanged (nested mappings of the result are new dicts).

    >>> deep_merge({"a": 1, "g": {"x": 1, "y": 2}}, {"g": {"y": 3}, "b": 4}, {"g": {"z": 5}})
    {'a': 1, 'g': {'x': 1, 'y': 3, 'z': 5}, 'b': 4}
    >>> deep_merge({"g": {"x": 1}}, {"g": [1]})   # a non-mapping replaces a group
    {'g': [1]}
    """
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping):
                old = out.get(key)
                out[key] = deep_merge(old, value) if isinstance(old, Mapping) else deep_merge(value)
            else:
                out[key] = value
    return out
