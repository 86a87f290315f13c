"""Per-partition reconciliation of the aggregator: every record read is aggregated or counted as dropped.

For each assigned ``sentiment.keyed`` partition the ledger checks two things:

- **no offset is skipped**: records arrive with consecutive offsets from the one the partition was set up at
  (``sentiment.keyed`` is neither compacted nor transactional, so its offsets have no gaps); an offset jump
  counts its missing records;
- **no record is handled without an outcome**: each record read must end in exactly one counted outcome
  (aggregated, duplicate, late, future, invalid, aggregation failed).

``unreconciled`` = skipped offsets + (records read - outcomes counted); anything but 0 is a bug, exported as
``finsentry_aggregator_unreconciled_records{partition}`` and alerted on. A record read twice (after a seek
back) is counted twice on both sides, so it leaves the difference unchanged.

>>> ledger = PartitionLedger()
>>> ledger.start(0, 100)
>>> for offset in (100, 101, 104):                 # 102 and 103 never arrive
...     ledger.read(0, offset)
...     ledger.accounted(0)
>>> ledger.unreconciled()
{0: 2}
>>> ledger.read(0, 105); ledger.unreconciled()     # read, but no outcome counted (yet)
{0: 3}
"""

from __future__ import annotations


class PartitionLedger:
    """Offsets read and outcomes counted per partition since it was assigned (see the module doc)."""

    def __init__(self) -> None:
        self._next: dict[int, int] = {}
        self._gaps: dict[int, int] = {}
        self._open: dict[int, int] = {}  # records read minus outcomes counted

    def start(self, partition: int, offset: int) -> None:
        """The partition was (re)assigned and will be read from ``offset``: its counts start from zero."""
        self._next[partition] = offset
        self._gaps[partition] = 0
        self._open[partition] = 0

    def read(self, partition: int, offset: int) -> None:
        """A record at ``offset`` was read from ``partition``."""
        expected = self._next.get(partition)
        if expected is None:  # read before start(): begin here
            self.start(partition, offset)
            expected = offset
        if offset > expected:
            self._gaps[partition] += offset - expected
        if offset + 1 > expected:
            self._next[partition] = offset + 1
        self._open[partition] += 1

    def accounted(self, partition: int) -> None:
        """The last record read from ``partition`` ended in a counted outcome."""
        self._open[partition] = self._open.get(partition, 0) - 1

    def forget(self, partition: int) -> None:
        """The partition was revoked."""
        self._next.pop(partition, None)
        self._gaps.pop(partition, None)
        self._open.pop(partition, None)

    def unreconciled(self) -> dict[int, int]:
        """Per partition: skipped offsets + records read without a counted outcome (0 when all is well)."""
        return {p: self._gaps[p] + self._open[p] for p in sorted(self._gaps)}
