"""Headless Chromium for the dashboard tests (``tests/monitor/test_dashboard_*.py``, ``tests/run/test_run_live.py``)."""

from __future__ import annotations

from pathlib import Path


def chromium(user_data_dir: Path, width: int = 1400, height: int = 1700):
    """Headless Chromium (Debian ``chromium`` + ``chromium-driver``) driven by selenium; no network access needed."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={user_data_dir}",
        f"--window-size={width},{height}",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
