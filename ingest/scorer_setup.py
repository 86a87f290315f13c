"""What a scorer service is built from besides its model: the company-name -> ticker table
(``ingest.company_table``), read and checked before the model is loaded so a bad table is reported first."""

from __future__ import annotations

from pathlib import Path

from finsentry.ingest.company_tickers import CompanyTickerMap


class CompanyTableError(ValueError):
    """The company table (setting ``ingest.company_table``) cannot be read or parsed; the message names the file.

    A ``ValueError``, not an ``OSError``: callers that report a missing model artifact on ``FileNotFoundError``
    must not blame ``model.path`` for a missing table.
    """


def load_company_table(path: Path | str | None) -> CompanyTickerMap | None:
    """The company-name -> ticker map of the StockNet-style TSV at ``path`` (None: no mapping).

    Raises:
        CompanyTableError: the file is missing, unreadable, not UTF-8, or lacks the Symbol / Company columns.
    """
    if path is None:
        return None
    try:
        return CompanyTickerMap.from_stocknet_table(path)
    except OSError as exc:
        raise CompanyTableError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # UnicodeDecodeError, or the columns are missing
        text = str(exc)
        raise CompanyTableError(text if str(path) in text else f"{path}: {text}") from exc
