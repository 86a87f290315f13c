"""``finsentry report``: a record dated past the wall clock is dropped and counted, and does not stretch the span."""

from __future__ import annotations

from test_monitor_report import scored, settings, stream

from finsentry.monitor.report import backfill, spike_table, weekly_table


def test_a_record_dated_in_9999_is_dropped_without_stretching_the_span_or_the_weekly_table():
    far = scored(9999, 0, True, ["ZZ"]) | {"published_at": "9999-12-31T23:00:00+00:00"}
    result = backfill([*stream(), far], settings())
    assert result.stats["future"] == 3  # all, topic and ticker messages of the one record
    assert (result.first, result.last) == ("2015-08-24T13:00:00Z", "2015-08-24T13:59:45Z")
    # the summary's spikes-per-week table: one week, not one column per week until 9999 (15 MB of Markdown)
    assert list(weekly_table(spike_table(result.events), result.first, result.last).columns) == ["2015-08-24"]


def test_a_file_of_future_records_only_says_none_was_aggregated(tmp_path):
    from finsentry.monitor.report import write_report

    far = scored(1, 0, True, ["ZZ"]) | {"published_at": "9999-12-31T23:00:00+00:00"}
    result = backfill([far], settings())
    assert result.first is None and result.last is None and result.stats["future"] == 3
    text = write_report(result, tmp_path, name="f").read_text(encoding="utf-8")
    assert "none aggregated (all dated past the clock)" in text and "None .. None" not in text, text[:600]
