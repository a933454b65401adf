"""What the bench scripts share. They run from anywhere as `python bench/NAME.py`."""

import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def api_token(env: dict, username: str, role: str) -> str:
    """A fresh API token for `username` in `role`, in the database `env` names."""
    return subprocess.run(
        [PYTHON, "manage.py", "create_api_user", username, "--role", role, "--rotate-token"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def wait_for_port(port: int, seconds: float = 30) -> None:
    """Return once something accepts connections on 127.0.0.1:`port`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing answered on port {port} within {seconds:.0f} s")
