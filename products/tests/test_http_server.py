"""The HTTP servers the app runs under (issue 12): request bodies are read or refused,
slow clients do not starve others, and the server's own errors are problem documents.

The live tests talk raw HTTP over sockets to a real `manage.py runserver` (`make run`)
and a real gunicorn with gunicorn.conf.py (`make serve`), both serving the test
database, so that they see what a client on the network sees.
"""

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token

from .conftest import make_product, make_user, requires_postgres, token_client

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PORTS = range(8120, 8150)
# The live gunicorn: one process with two threads, so that a few stalled clients
# would be enough to hold every thread; and a short read deadline.
THREADS = 2
READ_TIMEOUT = 3
BUFFER_BYTES = 1_000_000
# How long a test waits for an answer that should come at once (a bounded wait for
# correctness, not a speed target).
PROMPTLY = 5.0


def assert_problem(status: int, headers: dict, body: bytes, expected_status: int, code: str):
    assert status == expected_status, body
    assert headers["content-type"] == "application/problem+json"
    document = json.loads(body)
    assert document["status"] == expected_status
    assert document["code"] == code
    assert document["type"] == f"urn:inventory:problem:{code}"
    assert document["detail"]
    return document


# The middleware, through the Django test client.


@pytest.mark.django_db
@pytest.mark.parametrize("headers", [{}, {"CONTENT_LENGTH": "36"}])
def test_a_chunked_patch_is_refused_with_411_and_changes_nothing(headers):
    product = make_product(name="before", stock_quantity=5)
    client = token_client(make_user("admin"))

    response = client.generic(
        "PATCH",
        f"/api/products/{product.pk}/",
        b'{"name": "after", "stock_quantity": 99}',
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
        **headers,
    )

    assert response.status_code == 411
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "length_required"
    assert response.json()["instance"] == f"/api/products/{product.pk}/"
    # No Content-Length: the development server closes the connection after it.
    assert not response.has_header("Content-Length")
    product.refresh_from_db()
    assert (product.name, product.stock_quantity) == ("before", 5)


@pytest.mark.django_db
def test_a_chunked_increment_is_refused_with_411_not_a_missing_field():
    product = make_product(stock_quantity=5)
    client = token_client(make_user("admin"))

    response = client.generic(
        "POST",
        f"/api/products/{product.pk}/increment/",
        b'{"quantity": 3}',
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
    )

    assert response.status_code == 411
    assert response.json()["code"] == "length_required"
    product.refresh_from_db()
    assert product.stock_quantity == 5


@pytest.mark.django_db
def test_a_body_with_a_content_length_still_goes_through():
    product = make_product(name="before")
    client = token_client(make_user("admin"))

    response = client.patch(f"/api/products/{product.pk}/", {"name": "after"}, format="json")

    assert response.status_code == 200
    product.refresh_from_db()
    assert product.name == "after"


# Live servers.


def free_port() -> int:
    """A port of this test run's range (8120-8149) that nothing listens on."""
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS}")


def test_database_url() -> str:
    """DATABASE_URL, naming the test database that pytest-django made from it."""
    url = urlsplit(os.environ["DATABASE_URL"])
    return url._replace(path="/" + settings.DATABASES["default"]["NAME"]).geturl()


test_database_url.__test__ = False  # a helper, not a test


@dataclass
class Server:
    port: int
    process: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def serve(command: list[str], log: Path, **env: str) -> Iterator[Server]:
    """Run `command` (a server listening on env PORT) until the tests are done."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "CONN_MAX_AGE": "0",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        **env,
    }
    with log.open("w") as output:
        process = subprocess.Popen(
            [part.format(port=port) for part in command],
            cwd=ROOT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = Server(port, process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"the server exited:\n{server.log_text()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"no server on {port}:\n{server.log_text()}"
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def gunicorn(django_db_setup, tmp_path_factory) -> Iterator[Server]:
    """`make serve`'s gunicorn (gunicorn.conf.py), one worker of THREADS threads."""
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    yield from serve(
        [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py"],
        tmp_path_factory.mktemp("gunicorn") / "server.log",
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS=str(THREADS),
        REQUEST_READ_TIMEOUT=str(READ_TIMEOUT),
        REQUEST_BUFFER_BYTES=str(BUFFER_BYTES),
        ACCESS_LOG="off",
        GUNICORN_CONTROL_SOCKET="",
    )


@pytest.fixture(scope="module")
def runserver(django_db_setup, tmp_path_factory) -> Iterator[Server]:
    """`make run`'s server: Django's development server."""
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    yield from serve(
        [str(BIN / "python"), "manage.py", "runserver", "127.0.0.1:{port}", "--noreload"],
        tmp_path_factory.mktemp("runserver") / "server.log",
    )


class Connection:
    """A raw HTTP/1.1 client connection: send bytes, read responses off the socket."""

    opened: list["Connection"] = []

    def __init__(self, port: int, timeout: float = PROMPTLY):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.opened.append(self)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """The next response (an interim 1xx one included): status, headers, body."""
        status_line = self.file.readline()
        assert status_line, "the server closed the connection without an answer"
        status = int(status_line.split()[1])
        headers = {}
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if 100 <= status < 200:
            body = b""
        elif "content-length" in headers:
            body = self.file.read(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int(self.file.readline().split(b";")[0], 16):
                body += self.file.read(size)
                self.file.readline()
            self.file.readline()
        else:
            body = self.file.read()
        return status, headers, body

    def closed_by_server(self) -> bool:
        """Whether the server has closed the connection (reads end), within PROMPTLY."""
        try:
            return self.file.read(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture(autouse=True)
def _close_connections() -> Iterator[None]:
    """Whatever a test leaves open is closed, so that it holds up no later test."""
    yield
    while Connection.opened:
        Connection.opened.pop().close()


def http_request(method: str, path: str, body: bytes | None = None, **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def chunked(body: bytes) -> bytes:
    return f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


def admin_token() -> str:
    return Token.objects.create(user=make_user("admin")).key


# 1. Request bodies are read or refused, under both servers.


@requires_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("server_name", ["runserver", "gunicorn"])
def test_a_chunked_body_is_refused_with_411_and_the_connection_closed(server_name, request):
    server = request.getfixturevalue(server_name)
    product = make_product(name="before", stock_quantity=5)
    auth = f"Token {admin_token()}"
    connection = Connection(server.port)
    head = (
        f"PATCH /api/products/{product.pk}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {auth}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()

    connection.send(head + chunked(b'{"name": "after", "stock_quantity": 99}'))
    status, headers, body = connection.response()

    document = assert_problem(status, headers, body, 411, "length_required")
    assert document["instance"] == f"/api/products/{product.pk}/"
    # The unread body is not taken for a next request: the connection is closed.
    assert connection.closed_by_server()
    product.refresh_from_db()
    assert (product.name, product.stock_quantity) == ("before", 5)

    # The same change with a Content-Length is applied.
    connection = Connection(server.port)
    connection.send(
        http_request(
            "PATCH",
            f"/api/products/{product.pk}/",
            b'{"name": "after", "stock_quantity": 99}',
            Authorization=auth,
            Content_Type="application/json",
        )
    )
    status, _, body = connection.response()
    assert status == 200, body
    product.refresh_from_db()
    assert (product.name, product.stock_quantity) == ("after", 99)


# 2. Slow clients do not starve others (gunicorn).

STALLED = [
    # The headers of a POST and one byte of its 100-byte body.
    b"POST /api/products/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100\r\n\r\n{",
    # Part of the headers.
    b"GET /api/products/ HTTP/1.1\r\nHost: 127.0.0.1\r\n",
    # Part of the request line.
    b"GET /api/prod",
]


def still_waiting(connection: Connection) -> bool:
    """Whether the server has neither answered nor closed this connection yet."""
    connection.sock.setblocking(False)
    try:
        connection.sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    finally:
        connection.sock.setblocking(True)
        connection.sock.settimeout(PROMPTLY + READ_TIMEOUT)
    return False


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_stalled_clients_hold_no_thread_and_get_408_after_the_read_deadline(gunicorn):
    product = make_product(stock_quantity=5)
    auth = f"Token {admin_token()}"
    stalled = []
    for _ in range(THREADS * 3):
        for data in STALLED:
            connection = Connection(gunicorn.port)
            connection.send(data)
            stalled.append(connection)

    # Another client is answered while they stall, on a new connection...
    other = Connection(gunicorn.port)
    other.send(http_request("GET", f"/api/products/{product.pk}/", Authorization=auth))
    status, _, body = other.response()
    assert status == 200, body
    # ... and again on the same one.
    other.send(
        http_request(
            "POST",
            f"/api/products/{product.pk}/increment/",
            b'{"quantity": 2}',
            Authorization=auth,
            Content_Type="application/json",
        )
    )
    status, _, body = other.response()
    assert status == 200, body
    assert json.loads(body)["stock_quantity"] == 7
    assert all(still_waiting(connection) for connection in stalled)

    # Past the deadline each stalled client gets a 408, and its connection is closed.
    for connection in stalled:
        status, headers, body = connection.response()
        assert_problem(status, headers, body, 408, "request_timeout")
        assert connection.closed_by_server()
    product.refresh_from_db()
    assert product.stock_quantity == 7


def test_a_connection_that_sends_nothing_is_closed_at_the_deadline_without_an_answer(gunicorn):
    connection = Connection(gunicorn.port, timeout=READ_TIMEOUT + PROMPTLY)

    assert connection.closed_by_server()


def test_clients_that_keep_their_end_open_after_a_closing_answer_hold_up_nobody(gunicorn):
    """Closing lingers until the client closes too; gthread's linger blocked the worker's
    main loop for 2 s a connection."""
    lingering = []
    for _ in range(THREADS * 3):
        connection = Connection(gunicorn.port)
        connection.send(http_request("GET", "/healthz", Connection="close"))
        assert connection.response()[0] == 200
        lingering.append(connection)

    other = Connection(gunicorn.port)
    other.send(http_request("GET", "/healthz"))

    assert other.response()[0] == 200
    for connection in lingering:
        assert connection.closed_by_server()


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_request_that_arrives_in_pieces_is_served_whole(gunicorn):
    product = make_product(name="before")
    data = http_request(
        "PATCH",
        f"/api/products/{product.pk}/",
        b'{"name": "after"}',
        Authorization=f"Token {admin_token()}",
        Content_Type="application/json",
    )
    connection = Connection(gunicorn.port)

    for start in range(0, len(data), 20):
        connection.send(data[start : start + 20])
        time.sleep(0.01)
    status, _, body = connection.response()

    assert status == 200, body
    product.refresh_from_db()
    assert product.name == "after"


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_pipelined_requests_are_each_answered_in_order(gunicorn):
    product = make_product(name="before")
    auth = f"Token {admin_token()}"
    connection = Connection(gunicorn.port)

    connection.send(
        http_request("GET", "/healthz")
        + http_request(
            "PATCH",
            f"/api/products/{product.pk}/",
            b'{"name": "after"}',
            Authorization=auth,
            Content_Type="application/json",
        )
        + http_request("GET", f"/api/products/{product.pk}/", Authorization=auth)
    )

    assert connection.response()[0] == 200
    status, _, body = connection.response()
    assert status == 200, body
    status, _, body = connection.response()
    assert status == 200, body
    assert json.loads(body)["name"] == "after"


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_expect_100_continue_is_answered_once_then_the_body_is_read(gunicorn):
    product = make_product(stock_quantity=5)
    body = b'{"quantity": 3}'
    data = http_request(
        "POST",
        f"/api/products/{product.pk}/increment/",
        body,
        Authorization=f"Token {admin_token()}",
        Content_Type="application/json",
        Expect="100-continue",
    )
    connection = Connection(gunicorn.port)

    connection.send(data[: -len(body)])
    assert connection.response()[0] == 100
    connection.send(body)
    status, _, response_body = connection.response()

    assert status == 200, response_body
    product.refresh_from_db()
    assert product.stock_quantity == 8


def test_a_body_over_the_size_limit_is_refused_with_413_before_it_is_sent(gunicorn):
    connection = Connection(gunicorn.port)
    size = settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1

    connection.send(
        f"POST /api/products/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
        f"\r\nContent-Length: {size}\r\nExpect: 100-continue\r\n\r\n".encode()
    )

    assert_problem(*connection.response(), 413, "request_too_large")
    assert connection.closed_by_server()


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_past_the_buffer_budget_a_request_is_refused_503_and_served_once_there_is_room(gunicorn):
    auth = f"Token {admin_token()}"
    big = b'{"sku": "BIG-1", "name": "Big", "description": "' + b"x" * 600_000 + b'"}'
    data = http_request(
        "POST", "/api/products/", big, Authorization=auth, Content_Type="application/json"
    )
    holder = Connection(gunicorn.port)
    holder.send(data[:-10])  # all but the end: its 600 kB stay buffered
    time.sleep(0.2)

    refused = Connection(gunicorn.port)
    refused.send(data)
    status, headers, body = refused.response()
    assert_problem(status, headers, body, 503, "server_busy")
    assert int(headers["retry-after"]) > 0

    holder.close()
    deadline = time.monotonic() + PROMPTLY
    while True:  # until the server has seen the holder go
        connection = Connection(gunicorn.port)
        connection.send(data)
        status, headers, body = connection.response()
        if status != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert_problem(status, headers, body, 400, "validation_error")  # description too long


# 3. The server's own errors are problem documents (gunicorn).

HOST = "Host: 127.0.0.1\r\n"


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        pytest.param(
            b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + HOST.encode() + b"\r\n",
            414,
            "request_line_too_long",
            id="request line too long",
        ),
        pytest.param(b"GET /" + b"a" * 20_000, 414, "request_line_too_long", id="endless line"),
        pytest.param(
            f"GET / HTTP/1.1\r\n{HOST}X-Big: {'a' * 9000}\r\n\r\n".encode(),
            431,
            "headers_too_large",
            id="header field too large",
        ),
        pytest.param(
            f"GET / HTTP/1.1\r\n{HOST}".encode()
            + b"".join(f"X-{n}: {'a' * 8000}\r\n".encode() for n in range(9))
            + b"\r\n",
            431,
            "headers_too_large",
            id="head over 64 KiB",
        ),
        pytest.param(
            f"GET / HTTP/1.1\r\n{HOST}".encode()
            + b"".join(f"X-{n}: a\r\n".encode() for n in range(101))
            + b"\r\n",
            431,
            "headers_too_large",
            id="too many header fields",
        ),
        pytest.param(b"GARBAGE\r\n\r\n", 400, "malformed_request", id="not HTTP"),
        pytest.param(
            f"GET / HTTP/1.1\r\n{HOST}Bad Name: x\r\n\r\n".encode(),
            400,
            "malformed_request",
            id="invalid header name",
        ),
        pytest.param(
            b"GET / HTTP/1.1\nHost: 127.0.0.1\n\n", 400, "malformed_request", id="bare LF"
        ),
        pytest.param(
            f"POST / HTTP/1.1\r\n{HOST}Content-Length: 1\r\nContent-Length: 2\r\n\r\nab".encode(),
            400,
            "malformed_request",
            id="two Content-Lengths",
        ),
        pytest.param(
            f"POST / HTTP/1.1\r\n{HOST}Content-Length: 1x\r\n\r\na".encode(),
            400,
            "malformed_request",
            id="Content-Length not a number",
        ),
        pytest.param(
            f"POST / HTTP/1.1\r\n{HOST}Content-Length: 5\r\n"
            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n".encode(),
            400,
            "malformed_request",
            id="Content-Length and Transfer-Encoding",
        ),
        pytest.param(
            f"POST / HTTP/1.1\r\n{HOST}Transfer-Encoding: foo\r\n\r\n".encode(),
            501,
            "unsupported_transfer_coding",
            id="unknown transfer coding",
        ),
    ],
)
def test_the_servers_own_errors_are_problem_documents(gunicorn, data, status, code):
    connection = Connection(gunicorn.port)

    connection.send(data)

    assert_problem(*connection.response(), status, code)
    assert connection.closed_by_server()
