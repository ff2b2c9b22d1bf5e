"""A loopback HTTP server that answers SageMaker runtime calls with canned bytes.

The Stubber hands the client parsed objects; this server goes through botocore's real HTTP
and event-stream code, so the failures it can only meet on the wire are real: a body cut short
of its Content-Length, an event-stream message with a wrong checksum, a stream that drips.
"""

from __future__ import annotations

import contextlib
import json
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
from botocore.config import Config


@dataclass(frozen=True)
class Reply:
    """One canned answer: `parts` written in order, `pause_s` apart, with a Content-Length or
    (`chunked`) in HTTP chunks as SageMaker streams; `cut_short` closes the connection early:
    short of the Content-Length, or halfway through the last chunk."""

    parts: tuple[bytes, ...]
    content_type: str = "application/json"
    chunked: bool = False
    cut_short: bool = False
    pause_s: float = 0.0


def event_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message (string headers only), checksums included."""
    encoded = b"".join(
        bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v)) + v.encode()
        for k, v in headers.items()
    )
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def payload_part(data: bytes) -> bytes:
    headers = {
        ":message-type": "event",
        ":event-type": "PayloadPart",
        ":content-type": "application/octet-stream",
    }
    return event_message(headers, data)


def model_stream_error(message: str) -> bytes:
    headers = {
        ":message-type": "exception",
        ":exception-type": "ModelStreamError",
        ":content-type": "application/json",
    }
    return event_message(headers, json.dumps({"Message": message, "ErrorCode": "500"}).encode())


def stream_reply(messages: list[bytes], **kwargs: Any) -> Reply:
    """Event-stream messages, one per HTTP chunk."""
    content_type = "application/vnd.amazon.eventstream"
    return Reply(tuple(messages), content_type=content_type, chunked=True, **kwargs)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        reply = self.server.replies.pop(0)
        self.send_response(200)
        self.send_header("Content-Type", reply.content_type)
        if reply.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            total = sum(len(p) for p in reply.parts) + (100 if reply.cut_short else 0)
            self.send_header("Content-Length", str(total))
        self.send_header("Connection", "close")
        self.end_headers()
        # The client may stop reading early: what a cap or a deadline does.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._write(reply)
        self.close_connection = True

    def _write(self, reply: Reply) -> None:
        for i, part in enumerate(reply.parts):
            last = i == len(reply.parts) - 1
            if reply.chunked:
                sent = part[: len(part) // 2] if last and reply.cut_short else part
                self.wfile.write(f"{len(part):x}\r\n".encode() + sent)
                if sent is part:
                    self.wfile.write(b"\r\n")
            else:
                self.wfile.write(part)
            self.wfile.flush()
            time.sleep(reply.pause_s)
        if reply.chunked and not reply.cut_short:
            self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *_: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    replies: list[Reply]


class RawEndpoint:
    """The server and a real sagemaker-runtime client pointed at it."""

    def __init__(self, server: _Server, read_timeout_s: float) -> None:
        self.server = server
        host, port = server.server_address[:2]
        self.client = boto3.client(
            "sagemaker-runtime",
            region_name="us-east-1",
            endpoint_url=f"http://{host!s}:{port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(
                retries={"mode": "standard", "total_max_attempts": 1},
                read_timeout=read_timeout_s,
                connect_timeout=2,
            ),
        )

    def reply(self, reply: Reply) -> None:
        self.server.replies.append(reply)


@contextmanager
def raw_endpoint(read_timeout_s: float = 5.0) -> Iterator[RawEndpoint]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.replies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield RawEndpoint(server, read_timeout_s)
    finally:
        server.shutdown()
        server.server_close()
