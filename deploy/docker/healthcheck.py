"""Container health check for the finsentry image: one script for every service of the same image.

Docker runs it as ``HEALTHCHECK CMD python /opt/finsentry/healthcheck.py``. It finds which ``finsentry``
verb the container runs (from the command lines in ``/proc``, or ``--verb``), asks that service's own
HTTP endpoint on 127.0.0.1 (ports from the effective settings, so ``FINSENTRY_*`` overrides apply), and
exits 0 if it answered 200 within ``--timeout`` seconds, else 1. Verbs without an HTTP endpoint (``replay``,
``broker``, ``model ...``) are healthy while their process exists. Kubernetes does not use this script: its
probes ask the same endpoints with ``httpGet`` (see ``deploy/k8s/base``).

Endpoints (the defaults of the settings): scorer ``GET :8601/metrics`` (``ingest.scorer.metrics_port``),
aggregator ``GET :8600/api/health`` (``monitor.http_port``), relay ``GET :8700/healthz`` (``alerts.relay_port``).
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from pathlib import Path

HTTP_VERBS = ("scorer", "aggregator", "relay")
"""Verbs whose health is an HTTP answer; every other finsentry verb is healthy while it runs."""


def health_url(verb: str) -> str | None:
    """URL that tells whether ``verb``'s service is up, or None for verbs without an HTTP endpoint.

    Ports come from :func:`finsentry.settings.load_settings` (env ``FINSENTRY_*`` and ``FINSENTRY_CONFIG``).

    Raises:
        finsentry.settings.SettingsError: the settings are invalid (the service could not run either).
    """
    if verb not in HTTP_VERBS:
        return None
    from finsentry.settings import load_settings

    settings = load_settings()
    if verb == "scorer":
        return f"http://127.0.0.1:{settings.ingest.scorer.metrics_port}/metrics"
    if verb == "aggregator":
        return f"http://127.0.0.1:{settings.monitor.http_port}/api/health"
    return f"http://127.0.0.1:{settings.alerts.relay_port}/healthz"


def running_verb(proc: Path = Path("/proc")) -> str | None:
    """The verb after ``finsentry`` (global options skipped) in any process's command line, or None.

    Reads ``/proc/<pid>/cmdline`` (NUL-separated argv); unreadable entries are skipped.
    """
    for cmdline in sorted(proc.glob("[0-9]*/cmdline")):
        try:
            argv = [a.decode("utf-8", "replace") for a in cmdline.read_bytes().split(b"\0") if a]
        except OSError:
            continue
        for i, arg in enumerate(argv):
            if Path(arg).name == "finsentry":
                verb = _first_verb(argv[i + 1 :])
                if verb is not None:
                    return verb
    return None


VALUE_OPTIONS = ("--config", "-c", "--log-level")
"""Global ``finsentry`` options that take a value (skipped with it when looking for the verb)."""


def _first_verb(args: list[str]) -> str | None:
    """First positional argument, skipping global options and their values.

    >>> _first_verb(["--config", "x.yml", "--log-level=DEBUG", "scorer", "--metrics-port", "0"])
    'scorer'
    """
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in VALUE_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def check(url: str, timeout_s: float) -> tuple[bool, str]:
    """GET ``url``; (True, status) on HTTP 200, else (False, why)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - fixed 127.0.0.1 URL
            return response.status == 200, f"{url}: HTTP {response.status}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{url}: {exc}"


def main(argv: list[str] | None = None) -> int:
    """Exit status for Docker: 0 healthy, 1 unhealthy (the reason goes to stdout, which Docker keeps)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verb", help="service verb (default: found in /proc)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    args = parser.parse_args(argv)
    verb = args.verb or running_verb()
    if verb is None:
        print("no finsentry process found")
        return 1
    url = health_url(verb)
    if url is None:
        print(f"finsentry {verb} is running (no HTTP endpoint to ask)")
        return 0
    ok, message = check(url, args.timeout)
    print(message)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
