"""Raw HTTP over a socket for the tests of finsentry's servers (HEAD answers, idle connections)."""

from __future__ import annotations

import socket


def raw(port: int, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send ``request`` to 127.0.0.1:``port`` on a fresh connection, read until the server closes it.

    Returns the status line, the headers (lower-case names) and the body.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    return status, {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}, body
