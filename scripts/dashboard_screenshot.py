"""Save a screenshot of a running finsentry dashboard with headless Chromium (how docs/dashboard.png is made).

Usage (while ``finsentry run`` serves the dashboard; needs the ``dev`` extra for selenium and Debian's
``chromium`` + ``chromium-driver``):

    .venv/bin/python scripts/dashboard_screenshot.py http://127.0.0.1:8600/ docs/dashboard.png [--wait-spike]

Waits until the page has polled the API at least twice (and, with ``--wait-spike``, until the spike table has a
row), then saves a 1400 px wide PNG of the whole page.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from selenium.webdriver.common.by import By

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser_testkit import chromium  # noqa: E402  (the one headless-Chromium setup, shared with the tests)


def main() -> None:
    """Parse the arguments, open the page, wait for live data, save the screenshot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="dashboard URL, e.g. http://127.0.0.1:8600/")
    parser.add_argument("out", type=Path, help="PNG file to write")
    parser.add_argument("--wait-spike", action="store_true", help="wait for a row in the spike table")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for data")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="finsentry-chromium-") as profile:
        driver = chromium(Path(profile), width=1400, height=1000)
        try:
            driver.get(args.url)
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                polls = int(driver.find_element(By.TAG_NAME, "body").get_attribute("data-polls") or 0)
                rows = driver.find_elements(By.CSS_SELECTOR, "#spikes-table tbody tr")
                if polls >= 2 and (rows or not args.wait_spike):
                    break
                time.sleep(0.5)
            else:
                raise SystemExit(f"no live data on {args.url} within {args.timeout} s")
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(1400, min(int(height) + 200, 4000))  # the window is taller than its viewport
            time.sleep(2.5)  # one more poll at the new size
            driver.save_screenshot(str(args.out))
            print(f"saved {args.out}")
        finally:
            driver.quit()


if __name__ == "__main__":
    main()
