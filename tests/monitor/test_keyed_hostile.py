"""A bad ``sentiment.keyed`` record is a dead letter with a reason, never an exception that kills the aggregator."""

from __future__ import annotations

import pytest

from finsentry.ingest.dlq import DlqReason
from finsentry.monitor.records import KeyedMessageError, parse_keyed


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, DlqReason.EMPTY_MESSAGE),
        (b"", DlqReason.EMPTY_MESSAGE),
        (b"[" * 100_000, DlqReason.INVALID_JSON),
        (b'{"id": ' + b"9" * 5000 + b"}", DlqReason.INVALID_JSON),
        (b"\xff\xfe", DlqReason.INVALID_UTF8),
    ],
    ids=["tombstone", "empty", "deeply-nested", "5000-digit-int", "not-utf8"],
)
def test_bad_keyed_values_raise_keyed_message_error(value, reason):
    with pytest.raises(KeyedMessageError) as err:
        parse_keyed(value)
    assert err.value.reason == reason
