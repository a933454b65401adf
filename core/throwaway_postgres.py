"""A throwaway PostgreSQL cluster, for the tests and benchmarks that stop and restart
the database server (never the shared one): initdb'd into a temporary directory, as
the `postgres` user when run as root, served on its own port, deleted at the end.

Not used by the service itself.
"""

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


class Cluster:
    def __init__(self, port: int) -> None:
        self.port = port
        self.bin = Path(os.path.realpath(shutil.which("pg_ctl") or "pg_ctl")).parent
        self.directory = Path(tempfile.mkdtemp(prefix="inventory-throwaway-pg-"))
        self.data = self.directory / "data"
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")
        self.url = f"postgres://postgres@127.0.0.1:{port}/inventory"

    def _run(self, program: str, *args: str) -> None:
        command = [*self.as_postgres, str(self.bin / program), *args]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)

    def create(self) -> "Cluster":
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()
        address = ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        self._run("createdb", *address, "inventory")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory}"
        log = str(self.directory / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def stop(self, mode: str) -> None:
        """`fast` (clients disconnected, a clean shutdown) or `immediate` (a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


def create_on_a_free_port(candidates: range) -> Cluster:
    """A new cluster on the first port of `candidates` it can start on (another process
    may take a port between the check and the start: then the next one)."""
    for port in candidates:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                continue
        cluster = Cluster(port)
        try:
            return cluster.create()
        except subprocess.CalledProcessError:
            cluster.remove()
    raise RuntimeError(f"no free port in {candidates.start}-{candidates.stop - 1}")
