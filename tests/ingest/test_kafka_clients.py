"""``make_producer``: a producer closed while the broker is gone is closed for good (no traceback at exit)."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import json, time
from kafka.errors import KafkaTimeoutError
from finsentry.ingest.broker import EmbeddedBroker
from finsentry.ingest.kafka_clients import make_producer

with EmbeddedBroker(port=0) as broker:
    producer = make_producer(broker.kafka_settings(), request_timeout_ms=2000)
    producer.send("news.raw", key=b"k", value=b"delivered").get(timeout=30)
    broker.stop()
    pending = producer.send("news.raw", key=b"k", value=b"pending")
    time.sleep(0.5)
    try:
        producer.close(timeout=1)
        raised = None
    except KafkaTimeoutError as exc:
        raised = type(exc).__name__
    print(json.dumps({
        "raised": raised,
        "closed": producer._closed,
        "sender_alive": producer._sender.is_alive(),
        "pending_failed": pending.is_done and pending.failed(),
    }))
"""


def test_a_producer_closed_after_the_broker_stopped_is_closed_and_prints_nothing_at_exit() -> None:
    """kafka-python's close() raised KafkaTimeoutError before closing (records pending, broker gone): the sender
    thread kept running and KafkaProducer.__del__ printed 'Exception ignored in ... KafkaTimeoutError' at
    interpreter exit, after ``finsentry run`` had stopped (reproduced by killing its broker mid-replay)."""
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout.strip().splitlines()[-1])
    assert state == {"raised": "KafkaTimeoutError", "closed": True, "sender_alive": False, "pending_failed": True}
    assert "Exception ignored" not in result.stderr and "Traceback" not in result.stderr, result.stderr
