"""The closed enum of dead-letter reasons: documented, exemplified, generated docs in sync, headers."""

from __future__ import annotations

import re

from ingest_testkit import MALFORMED

from finsentry.common.paths import REPO_ROOT
from finsentry.ingest.contract import dlq_headers
from finsentry.ingest.dlq import REASON_DOCS, DlqReason, InvalidRecord, render_markdown
from finsentry.ingest.validation import validate_news_raw


def test_every_reason_is_snake_case_and_documented():
    assert set(REASON_DOCS) == set(DlqReason)
    for reason in DlqReason:
        assert re.fullmatch(r"[a-z]+(_[a-z0-9]+)*", reason.value), reason
        assert REASON_DOCS[reason].meaning


def test_each_scorer_example_is_rejected_with_its_own_reason():
    checked = 0
    for reason, doc in REASON_DOCS.items():
        if doc.example is None:
            continue
        try:
            validate_news_raw(doc.example)
        except InvalidRecord as exc:
            assert exc.reason is reason, (reason, exc)
            checked += 1
        else:
            raise AssertionError(f"example of {reason} was accepted")
    assert checked == len(DlqReason) - 3  # invalid_label (labels consumer), invalid_key (aggregator), scoring_failed


def test_docs_page_is_generated_from_the_enum():
    page = (REPO_ROOT / "docs" / "dlq.md").read_text()
    assert page == render_markdown(), "regenerate: python -m finsentry.ingest.dlq > docs/dlq.md"
    for reason in DlqReason:
        assert f"| `{reason.value}` |" in page


def test_catalogue_covers_forty_kinds_and_every_validation_reason():
    assert len(MALFORMED) >= 40
    assert len({name for name, _, _ in MALFORMED}) == len(MALFORMED)
    covered = {reason for _, _, reason in MALFORMED}
    assert covered == set(DlqReason) - {DlqReason.INVALID_LABEL, DlqReason.INVALID_KEY, DlqReason.SCORING_FAILED}


def test_headers_follow_the_contract():
    h = dict(dlq_headers(DlqReason.INVALID_JSON, "x" * 5000, "news.raw", 3, 1234, value_truncated="99"))
    assert h["reason"] == b"invalid_json"
    assert h["source_topic"] == b"news.raw"
    assert (h["source_partition"], h["source_offset"]) == (b"3", b"1234")
    assert len(h["message"]) == 1000
    assert h["value_truncated"] == b"99"
