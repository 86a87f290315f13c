"""Near-duplicate stories per aggregate key: SimHash over normalized words, within a sliding event-time horizon.

The same story syndicated by many outlets, or retweeted, must count once in the spike statistics, and evidence
must list distinct stories. Each item is reduced to a 64-bit SimHash (Charikar, "Similarity estimation
techniques from rounding algorithms", STOC 2002; used for near-duplicate web pages by Manku, Jain and Das
Sarma, WWW 2007) of its normalized text: lower case, links, ``@user`` mentions, a leading ``RT`` and
punctuation removed, features = the words and the pairs of adjacent words. Two items are near-duplicates when
their hashes differ in at most :data:`MAX_HAMMING` bits (3 of 64, Manku et al.'s setting). Lookup is exact for
that distance: the hash is cut into four 16-bit bands and, by the pigeonhole principle, two hashes within 3 bits
share at least one band, so only items sharing a band are compared.

:class:`NoveltyIndex` keeps the distinct stories first seen in the last ``horizon_seconds`` of event time of
one key (memory bounded by the key's distinct stories per horizon); it runs in the aggregator, per key,
because every item of a key reaches exactly one aggregator (a scorer sees only some partitions of
``news.raw`` and would miss a copy elsewhere).

>>> idx = NoveltyIndex(horizon_seconds=86_400)
>>> idx.update("a1", "Fed raises rates by 75 basis points, stocks slide", t=0.0)
(1.0, 'a1')
>>> idx.update("b7", "RT @wire: Fed raises rates by 75 basis points - stocks slide https://t.co/x", t=60.0)
(0.0, 'a1')
>>> idx.update("c2", "Apple unveils a new iPhone", t=120.0)[1]
'c2'
>>> idx.duplicates, len(idx)           # the copy is counted, not kept
(1, 2)
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from array import array
from collections import deque
from functools import lru_cache

import numpy as np

MAX_HAMMING = 3
"""Bits (of 64) within which two SimHashes are the same story."""

_BANDS = 4
_BAND_BITS = 16
_URL = re.compile(r"https?://\S+|www\.\S+")
_MENTION = re.compile(r"(^|\s)@\w+:?")
_RT = re.compile(r"^\s*rt\b[:\s]*", re.IGNORECASE)
_WORD = re.compile(r"[^\W_]+|\$[^\W_]+")


def words(text: str) -> list[str]:
    """Normalized words of ``text``: lower case, no links, mentions, leading ``RT`` or punctuation.

    >>> words("RT @Reuters: Wall St. SLUMPS as oil falls https://t.co/abc")
    ['wall', 'st', 'slumps', 'as', 'oil', 'falls']
    >>> words("Börse: DAX fällt"), words("腾讯股价暴跌，投资者恐慌"), words("📉📉 https://t.co/x")
    (['börse', 'dax', 'fällt'], ['腾讯股价暴跌', '投资者恐慌'], [])

    Words are runs of Unicode letters and digits, so non-Latin scripts count as text too.
    """
    text = _RT.sub("", text)
    text = _MENTION.sub(" ", _URL.sub(" ", text))
    return _WORD.findall(text.lower())


def _feature_digest(feature: str) -> bytes:
    """The 8-byte BLAKE2b digest of a feature: its 64-bit hash, big-endian."""
    return hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()


@lru_cache(maxsize=8192)
def simhash(text: str) -> int | None:
    """64-bit SimHash of ``text``'s words and adjacent word pairs (each feature weighs 1; BLAKE2b feature hashes).

    None when the text has no word at all (only links, mentions or emoji): such items cannot be compared and
    are always novel. Cached by text (an item fans out to several keys).

    >>> simhash("Stocks slide as the Fed raises rates") == simhash("stocks SLIDE as the Fed raises rates!")
    True
    """
    w = words(text)
    feats = w + [f"{a} {b}" for a, b in zip(w, w[1:], strict=False)]
    if not feats:
        return None
    # bit b of the result is set when more features have bit b set than clear (a tie leaves it clear): counted
    # with numpy over the (features, 64) bit matrix of the feature hashes, the same integer as a loop per bit
    # over each hash, ~5x faster (the SimHash was the aggregator's largest cost after the detector)
    digests = b"".join(_feature_digest(f) for f in feats)
    little = np.frombuffer(digests, dtype=">u8").astype("<u8").view(np.uint8).reshape(len(feats), 8)
    ones = np.unpackbits(little, axis=1, bitorder="little").sum(axis=0)
    return int.from_bytes(np.packbits(2 * ones > len(feats), bitorder="little").tobytes(), "little")


_NUMPY_FROM = 48
"""A band value gets an array of its entries' hashes, compared with numpy, once it holds this many entries (numpy's
fixed cost pays off from about there); the array is dropped when the list falls below half of it."""


def _nearest(h: int, entries: list[tuple[float, int, str]], hashes: array[int] | None) -> tuple[int, int]:
    """``(d, i)``: the smallest Hamming distance between ``h`` and the hashes of ``entries`` (non-empty; their
    64-bit hashes also in ``hashes`` when the list is long, else None) and the first index at which it occurs."""
    if hashes is not None:
        dist = np.bitwise_count(np.frombuffer(hashes, dtype=np.uint64) ^ np.uint64(h))
        i = int(dist.argmin())
        return int(dist[i]), i
    dists = [(h ^ e[1]).bit_count() for e in entries]
    d = min(dists)
    return d, dists.index(d)


class NoveltyIndex:
    """Items of one key within ``horizon_seconds`` of event time, to find near-duplicates. Not thread-safe.

    Args:
        horizon_seconds: how far back (s, event time) a story counts as already seen (> 0).

    Raises:
        ValueError: ``horizon_seconds <= 0``.
    """

    __slots__ = ("horizon", "_bands", "_arrays", "_order", "duplicates", "_newest")

    def __init__(self, horizon_seconds: float) -> None:
        if not horizon_seconds > 0:
            raise ValueError(f"horizon_seconds must be > 0, got {horizon_seconds}")
        self.horizon = float(horizon_seconds)
        # per band, per band value: the entries that have it; and, only for band values with at least
        # _NUMPY_FROM entries, their hashes in the same order (8 bytes each, read by numpy in place). Most band
        # values hold one entry, so an array for every one of them cost a third more aggregator state.
        self._bands: list[dict[int, list[tuple[float, int, str]]]] = [{} for _ in range(_BANDS)]
        self._arrays: list[dict[int, array[int]]] = [{} for _ in range(_BANDS)]
        self._order: deque[tuple[float, int, str]] = deque()
        self.duplicates = 0
        self._newest = float("-inf")

    def __len__(self) -> int:
        return len(self._order)

    def update(self, item_id: str, text: str, t: float) -> tuple[float, str]:
        """Add one item (event time ``t``, epoch s); returns ``(novelty, cluster_id)``.

        ``novelty`` is in [0, 1]: 0 for a near-duplicate of an item seen within the horizon (Hamming distance
        ``d <= 3``), else ``min(1, d / 16)`` for the nearest item sharing a band, and 1 when none does;
        ``cluster_id`` is the id of the first item of the story (the item's own id when it is new). An item
        without words (:func:`simhash` None) is novel and not kept. Only novel items are kept: a copy matches the
        story's first item, so a story repeated thousands of times costs one entry, not thousands, and counts
        once within the horizon after its first sighting.
        """
        self._expire(max(t, self._newest) - self.horizon)
        self._newest = max(self._newest, t)
        h = simhash(text)
        if h is None or t < self._newest - self.horizon:
            return 1.0, item_id  # nothing to compare, or older than the horizon already: novel, not kept
        best_d, cluster = 64, item_id
        for band, table in enumerate(self._bands):
            k = (h >> (band * _BAND_BITS)) & 0xFFFF
            entries = table.get(k)
            if entries is None:
                continue
            d, i = _nearest(h, entries, self._arrays[band].get(k))  # the band's first nearest: later only if nearer
            if d < best_d:
                best_d, cluster = d, entries[i][2]
            if best_d == 0:
                break  # the same hash (a verbatim copy): no later band can hold a nearer item
        if best_d <= MAX_HAMMING:
            self.duplicates += 1
            return 0.0, cluster
        cluster = item_id
        novelty = 1.0 if best_d >= 16 else best_d / 16
        entry = (t, h, cluster)
        self._order.append(entry)
        for band, table in enumerate(self._bands):
            k = (h >> (band * _BAND_BITS)) & 0xFFFF
            entries = table.get(k)
            if entries is None:
                table[k] = [entry]
                continue
            entries.append(entry)
            hashes = self._arrays[band].get(k)
            if hashes is not None:
                hashes.append(h)
            elif len(entries) >= _NUMPY_FROM:
                self._arrays[band][k] = array("Q", (e[1] for e in entries))
        return novelty, cluster

    def _expire(self, cutoff: float) -> None:
        order = self._order
        while order and order[0][0] < cutoff:
            entry = order.popleft()
            h = entry[1]
            for band, table in enumerate(self._bands):
                k = (h >> (band * _BAND_BITS)) & 0xFFFF
                entries = table.get(k)
                if entries is None:
                    continue
                hashes = self._arrays[band].get(k)
                with contextlib.suppress(ValueError):
                    i = entries.index(entry)
                    del entries[i]
                    if hashes is not None:
                        del hashes[i]
                if hashes is not None and len(entries) < _NUMPY_FROM // 2:
                    del self._arrays[band][k]  # short again: the list is scanned directly
                if not entries:
                    del table[k]
                    self._arrays[band].pop(k, None)
