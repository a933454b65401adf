"""The gunicorn worker of `make serve`: gthread, but a request reaches a thread only
once it has arrived in full.

Gunicorn's gthread worker hands a connection to a thread as soon as its first bytes
arrive, and the thread then blocks reading the rest of the request: a few clients
that send half a request and stall hold every thread, and nobody else is answered.
This worker reads each request -- its head, then the body its Content-Length
announces -- in the main loop, which waits on all its sockets at once, and gives it to
a thread only when it is complete; the thread then never waits on the client. Bounds:

- a request must arrive in full within REQUEST_READ_TIMEOUT seconds (default 20) of
  its connection being accepted, or of its first byte on a kept-alive connection:
  past that it is answered 408 and the connection closed (without a word if not a
  byte came);
- its head (request line and header fields) at most MAX_HEAD_BYTES: 431 (414 if the
  request line alone is longer than gunicorn's limit_request_line);
- its body at most Django's DATA_UPLOAD_MAX_MEMORY_SIZE, as the app would refuse it
  anyway: 413, answered before the body is sent (`Expect: 100-continue` is honoured);
- the worker holds at most REQUEST_BUFFER_BYTES (default 32 MiB) of incomplete
  requests at once: past that a request is answered 503 with Retry-After.

A body framed by Transfer-Encoding is not waited for: LengthRequiredMiddleware
refuses it without reading it, and the connection is closed after the answer.

Closing a connection lingers, as RFC 9112 section 9.6 asks, in the main loop (gthread
lingers up to 2 s in its main loop per closed connection, during which the whole
worker answers nobody).

The errors gunicorn answers itself (a malformed request, a request line or header
field too long) are problem documents like the API's, not gunicorn's HTML pages.

It serves plain HTTP/1.1, behind a proxy that terminates TLS: it refuses to start
with TLS, HTTP/2 or the PROXY protocol configured, whose bytes it could not read.
"""

import contextlib
import errno
import selectors
import socket
import time
from datetime import timedelta
from functools import partial
from http import HTTPStatus

import environ
from gunicorn import util
from gunicorn.http import errors as http_errors
from gunicorn.http.unreader import SocketUnreader
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

env = environ.Env()

MAX_HEAD_BYTES = 64 * 1024
RECV_BYTES = 64 * 1024
# A closing connection is drained of what the client still sends for this long, or
# this much, so that the kernel does not answer those bytes with a reset that could
# destroy the response before the client reads it.
LINGER_SECONDS = 2.0
LINGER_MAX_BYTES = 64 * 1024
BUSY_RETRY_AFTER_SECONDS = 5

# Every answer the server gives itself: code -> (status, detail).
PROBLEMS = {
    "malformed_request": (400, "The request is not valid HTTP/1.1"),
    "forbidden": (403, "The request is not allowed from this address."),
    "request_timeout": (408, "The request did not arrive in full within {} seconds."),
    "request_too_large": (413, "The request body is larger than {:,} bytes."),
    "request_line_too_long": (414, "The request line is too long."),
    "expectation_failed": (417, "The request's Expect header cannot be met."),
    "headers_too_large": (431, "The request's header fields are too large."),
    "server_error": (500, "An unexpected error occurred; it has been logged."),
    "unsupported_transfer_coding": (501, "The request's Transfer-Encoding is not supported."),
    "server_busy": (503, "The server is busy; retry shortly."),
}
# gunicorn's errors reading a request, most specific first.
ERROR_CODES = (
    (http_errors.LimitRequestLine, "request_line_too_long"),
    (http_errors.LimitRequestHeaders, "headers_too_large"),
    (http_errors.UnsupportedTransferCoding, "unsupported_transfer_coding"),
    (http_errors.ExpectationFailed, "expectation_failed"),
    (http_errors.ForbiddenProxyRequest, "forbidden"),
    (http_errors.ParseException, "malformed_request"),
)


def problem_response(code: str, detail: str = "", headers: dict | None = None) -> bytes:
    """A whole HTTP response carrying a problem document, after which the connection
    closes. `detail` defaults to the code's own."""
    from core.errors import PROBLEM_CONTENT_TYPE, problem_bytes  # needs Django set up

    status, default_detail = PROBLEMS[code]
    body = problem_bytes(status, code, detail or default_detail)
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "Connection: close",
        f"Content-Type: {PROBLEM_CONTENT_TYPE}",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def code_for_error(exc: BaseException) -> str:
    """The problem code for an error gunicorn raised while reading a request."""
    if isinstance(exc, (http_errors.InvalidResponseHeader, http_errors.InvalidResponseHeaderName)):
        return "server_error"  # the app's fault, not the client's
    for error_class, code in ERROR_CODES:
        if isinstance(exc, error_class):
            return code
    return "server_error"


class BoundedSocketUnreader(SocketUnreader):
    """Reads the socket no later than the connection's request deadline.

    A thread is given a request that has arrived in full, so it should never have to
    wait for the client; this bounds the wait if it ever does."""

    def __init__(self, sock, conn: "BufferedConn"):
        super().__init__(sock)
        self.conn = conn

    def chunk(self, size_hint=None):
        remaining = self.conn.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request's read deadline has passed")
        self.sock.settimeout(remaining)
        try:
            return super().chunk(size_hint)
        finally:
            self.sock.settimeout(None)


class BufferedConn(TConn):
    """A connection, with what has arrived of its next request."""

    def __init__(self, *args):
        super().__init__(*args)
        self.received = bytearray()
        self.deadline = 0.0
        self.scanned = 0  # bytes of `received` searched for the end of the head
        self.expected: int | None = None  # head + body, once the head is complete
        self.reserved = 0  # bytes counted against the worker's buffer budget
        self.handed = b""  # the complete request, for the thread's parser
        self.watched = False  # registered with the poller for its request's bytes
        self.drained = 0

    def init(self):
        if not self.initialized:
            super().init()
            self.parser.unreader = BoundedSocketUnreader(self.sock, self)


def _bare_lf(data: bytearray, start: int) -> bool:
    """Whether a line of data[start:] ends with LF alone (gunicorn refuses those at once)."""
    position = data.find(b"\n", start)
    while position >= 0:
        if position == 0 or data[position - 1] != 0x0D:
            return True
        position = data.find(b"\n", position + 1)
    return False


def _body_framing(head: bytes) -> tuple[int | None, bool, bool]:
    """(Content-Length or None if absent or unusable, Transfer-Encoding present,
    Expect: 100-continue) from a request head. Gunicorn parses the head again and
    has the last word: when this cannot tell the body's length, the request goes to a
    thread at once, and gunicorn refuses it or the app does, without reading a body."""
    lengths = []
    transfer_encoding = expect_continue = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.lower()
        value = value.strip(b" \t")
        if name == b"content-length":
            lengths.append(value)
        elif name == b"transfer-encoding":
            transfer_encoding = True
        elif name == b"expect":
            expect_continue = value.lower() == b"100-continue"
    if not lengths:
        return 0, transfer_encoding, expect_continue
    if len(lengths) > 1 or not lengths[0].isdigit():
        return None, transfer_encoding, expect_continue
    return int(lengths[0]), transfer_encoding, expect_continue


class BufferingThreadWorker(ThreadWorker):
    """gthread, with each request read in full by the main loop (see the module)."""

    @classmethod
    def check_config(cls, cfg, log):
        super().check_config(cfg, log)
        if (
            cfg.is_ssl
            or "h2" in cfg.http_protocols
            or cfg.proxy_protocol != "off"
            or getattr(cfg, "protocol", "http") != "http"
        ):
            raise RuntimeError(
                f"{cls.__name__} serves plain HTTP/1.1 only: terminate TLS and HTTP/2 in "
                "the proxy in front, and turn off the PROXY protocol."
            )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read_timeout = env.float("REQUEST_READ_TIMEOUT", default=20.0)
        self.buffer_budget = env.int("REQUEST_BUFFER_BYTES", default=32 * 1024 * 1024)
        self.max_body = 0
        # Connections reading a request, and closing ones, each in deadline order.
        self.reading: dict[BufferedConn, None] = {}
        self.lingering: dict[BufferedConn, None] = {}
        self.buffered = 0

    def run(self):
        from django.conf import global_settings, settings  # the app has set Django up
        from django.core.exceptions import ImproperlyConfigured

        try:
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        except ImproperlyConfigured:  # an app that is not Django: bench/floor_app.py
            limit = None
        self.max_body = global_settings.DATA_UPLOAD_MAX_MEMORY_SIZE if limit is None else limit
        super().run()

    # Reading requests, in the main loop.

    def accept(self, listener):
        try:
            client_sock, client_addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = BufferedConn(self.cfg, client_sock, client_addr, listener.getsockname())
        self.read_request(conn)

    def on_client_socket_readable(self, conn, client):
        """A kept-alive connection's next request is arriving."""
        self.keepalived_conns.remove(conn)
        self.poller.unregister(client)
        self.read_request(conn, readable=True)

    def read_request(self, conn: BufferedConn, data: bytes = b"", readable: bool = False) -> None:
        conn.sock.setblocking(False)
        conn.received = bytearray(data)
        conn.scanned = conn.reserved = conn.drained = 0
        conn.expected = None
        conn.deadline = time.monotonic() + self.read_timeout
        conn.watched = False
        self.reading[conn] = None
        if data:
            self.advance(conn)
        elif readable:  # most often the whole request is there already
            self.on_request_bytes(conn)
        if conn in self.reading:
            self.poller.register(
                conn.sock, selectors.EVENT_READ, partial(self.on_request_bytes, conn)
            )
            conn.watched = True

    def on_request_bytes(self, conn: BufferedConn, _sock=None) -> None:
        data = _receive(conn)
        if data is None:
            return
        if not data:  # the client has gone
            self.stop_reading(conn)
            self.close(conn)
            return
        conn.received += data
        self.advance(conn)

    def advance(self, conn: BufferedConn) -> None:
        """Hand the request over once complete, refuse it if it cannot be, or wait."""
        data = conn.received
        if conn.expected is None:
            end = data.find(b"\r\n\r\n", max(conn.scanned - 3, 0))
            if end < 0:
                if _bare_lf(data, max(conn.scanned - 1, 0)):
                    return self.hand_over(conn)  # for gunicorn's 400
                conn.scanned = len(data)
                if self.request_line_too_long(data):
                    return self.refuse(conn, "request_line_too_long")
                if len(data) > MAX_HEAD_BYTES:
                    return self.refuse(conn, "headers_too_large")
                if not self.reserve(conn, len(data)):
                    return self.refuse_busy(conn)
                return None
            end += 4
            if end > MAX_HEAD_BYTES:
                return self.refuse(conn, "headers_too_large")
            length, transfer_encoding, expect_continue = _body_framing(bytes(data[:end]))
            if transfer_encoding or length is None:
                return self.hand_over(conn)  # refused without reading a body
            if length > self.max_body:
                detail = PROBLEMS["request_too_large"][1].format(self.max_body)
                return self.refuse(conn, "request_too_large", detail)
            conn.expected = end + length
            if not self.reserve(conn, conn.expected):
                return self.refuse_busy(conn)
            if expect_continue and len(data) < conn.expected and _is_http11(data):
                self.send(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
        if len(data) >= conn.expected:
            self.hand_over(conn)
        return None

    def reserve(self, conn: BufferedConn, size: int) -> bool:
        """Count `size` bytes for this request against the buffer budget, if it allows."""
        if self.buffered - conn.reserved + size > self.buffer_budget:
            return False
        self.buffered += size - conn.reserved
        conn.reserved = size
        return True

    def stop_reading(self, conn: BufferedConn) -> None:
        del self.reading[conn]
        if conn.watched:
            self.poller.unregister(conn.sock)
            conn.watched = False
        self.buffered -= conn.reserved
        conn.reserved = 0

    def hand_over(self, conn: BufferedConn) -> None:
        self.stop_reading(conn)
        conn.handed, conn.received = bytes(conn.received), bytearray()
        conn.data_ready = True
        self.enqueue_req(conn)

    def request_line_too_long(self, data: bytearray) -> bool:
        """Whether the request line has grown past gunicorn's limit_request_line."""
        start = 2 if data.startswith(b"\r\n") else 0  # one empty line may come first
        limit = self.cfg.limit_request_line or MAX_HEAD_BYTES
        return len(data) - start > limit + 2 and data.find(b"\r\n", start, start + limit + 2) < 0

    def refuse_busy(self, conn: BufferedConn) -> None:
        self.refuse(conn, "server_busy", headers={"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)})

    def refuse(self, conn: BufferedConn, code: str, detail: str = "", headers=None) -> None:
        """Answer a problem from the main loop, and close."""
        self.log.info("Refused a request from ip=%s: %s", _ip(conn), code)
        self.stop_reading(conn)
        self.send(conn, problem_response(code, detail, headers))
        self.linger(conn)

    def send(self, conn: BufferedConn, data: bytes) -> None:
        """Send a short answer from the main loop, as much as the socket takes at once."""
        with contextlib.suppress(OSError):
            conn.sock.send(data)

    def murder_pending(self):
        """Called by the main loop about every second: enforce the deadlines."""
        super().murder_pending()
        now = time.monotonic()
        while self.reading:
            conn = next(iter(self.reading))
            if conn.deadline > now:
                break
            if conn.received:
                detail = PROBLEMS["request_timeout"][1].format(f"{self.read_timeout:g}")
                self.refuse(conn, "request_timeout", detail)
            else:  # not a byte: nothing to answer
                self.stop_reading(conn)
                self.close(conn)
        if not self.alive:  # stopping: connections that have sent nothing close now
            for conn in [c for c in self.reading if not c.received]:
                self.stop_reading(conn)
                self.close(conn)
        while self.lingering:
            conn = next(iter(self.lingering))
            if conn.deadline > now:
                break
            self.close(conn)

    # Closing.

    def linger(self, conn: BufferedConn) -> None:
        """Close after the client has had the answer: FIN now, then drain what it still
        sends until it closes too, for LINGER_SECONDS at most, without blocking."""
        try:
            conn.sock.setblocking(False)
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close(conn)
            return
        conn.deadline = time.monotonic() + LINGER_SECONDS
        conn.drained = 0
        self.lingering[conn] = None
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_linger_bytes, conn))

    def on_linger_bytes(self, conn: BufferedConn, _sock=None) -> None:
        data = _receive(conn)
        if data is None:
            return
        conn.drained += len(data)
        if not data or conn.drained >= LINGER_MAX_BYTES:
            self.close(conn)

    def close(self, conn: BufferedConn) -> None:
        if conn in self.lingering:
            del self.lingering[conn]
            self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        conn.close()

    # In the threads.

    def handle(self, conn):
        if conn.handed:
            data, conn.handed = conn.handed, b""
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(data)
        return super().handle(conn)

    def handle_request(self, req, conn):
        if any(name == "TRANSFER-ENCODING" for name, _ in req.headers):
            req.force_close()  # its body is not read: the connection cannot go on
        # No 100 Continue from gunicorn: the body has arrived (advance() sent one if the
        # client waited for it), or is refused unread.
        req._expected_100_continue = False
        return super().handle_request(req, conn)

    def finish_request(self, conn, fs):
        """Back in the main loop after a thread's request: wait for the next request
        (read in the main loop as ever), or close."""
        try:
            keep_alive = not fs.cancelled() and fs.result() is True
        except Exception:
            keep_alive = False
        try:
            if not keep_alive:
                self.linger(conn)
                return
            pipelined = conn.parser.unreader.take_buffered()
            if pipelined:
                self.read_request(conn, pipelined)
                return
            conn.sock.setblocking(False)
            conn.set_timeout()
            if not self.alive:
                conn.timeout = min(conn.timeout, time.monotonic() + STOP_KEEPALIVE_LINGER)
            self.keepalived_conns.append(conn)
            self.poller.register(
                conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn)
            )
        except Exception:
            self.log.exception("Error finishing a request")
            self.nr_conns -= 1
            conn.close()

    def handle_error(self, req, client, addr, exc):
        """gunicorn's own error answers (malformed request, limits), as problem documents."""
        code = code_for_error(exc)
        status, detail = PROBLEMS[code]
        if code == "malformed_request":
            detail = f"{detail}: {str(exc)[:200]}"
        addr = addr or ("", -1)
        if code == "server_error":
            self.log.exception("Error handling request %s", getattr(req, "uri", "(no URI read)"))
        else:
            self.log.warning("Invalid request from ip=%s: %s", addr[0], exc)
        response = problem_response(code, detail)
        if req is not None:
            environ = default_environ(req, client, self.cfg)
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = addr[0], str(addr[1])
            resp = Response(req, client, self.cfg)
            resp.status = f"{status} {HTTPStatus(status).phrase}"
            resp.response_length = len(response)
            self.log.access(resp, req, environ, timedelta(0))
        try:
            util.write_nonblock(client, response)
        except Exception:
            self.log.debug("Failed to send error message.")


def _is_http11(data: bytearray) -> bool:
    line_end = data.find(b"\r\n", 2 if data.startswith(b"\r\n") else 0)
    return data[:line_end].rstrip().endswith(b"HTTP/1.1")


def _ip(conn: TConn) -> str:
    return conn.client[0] if isinstance(conn.client, tuple) else ""


def _receive(conn) -> bytes | None:
    """What a readable socket has: its bytes, b"" when the client has gone (or the
    socket broke), None when nothing was there after all."""
    try:
        return conn.sock.recv(RECV_BYTES)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""
