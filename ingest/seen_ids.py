"""A bounded least-recently-used set of item ids: the scorer's duplicate check."""

from __future__ import annotations

from collections import OrderedDict


class SeenIds:
    """Remembers the last ``capacity`` ids; ``add`` says whether an id was new.

    A hit refreshes the id (moves it to the most-recent end); when full, the least recently seen id is
    forgotten. Capacity 0 remembers nothing (every id is new). Memory: about 100 bytes per id.

    >>> seen = SeenIds(2)
    >>> seen.add("a"), seen.add("b"), seen.add("a"), seen.add("c"), seen.add("b")
    (True, True, False, True, True)
    >>> "a" in seen, len(seen)
    (False, 2)
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, item_id: str) -> bool:
        """Record ``item_id``; True if it was not among the remembered ids."""
        if item_id in self._ids:
            self._ids.move_to_end(item_id)
            return False
        if self.capacity == 0:
            return True
        self._ids[item_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)
