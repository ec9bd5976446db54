"""A real nginx for tests and benchmarks: ``deploy/nginx/authz.conf`` with its addresses replaced.

Each run gets its own prefix directory (config, pid, logs, temp files), listens on
loopback ports only, runs in the foreground (``daemon off``) and is stopped by whoever
started it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["NGINX_CONF", "Nginx", "nginx", "render_authz_conf"]

NGINX_CONF = Path(__file__).resolve().parent.parent / "deploy" / "nginx" / "authz.conf"


def render_authz_conf(listen: int, authz: int, app: int) -> str:
    """The deployed file, pointed at loopback ports; fails if the file no longer has them."""
    text = NGINX_CONF.read_text(encoding="utf-8")
    replacements = {
        "server authz:9102;": f"server 127.0.0.1:{authz};",
        "server app:8080;": f"server 127.0.0.1:{app};",
        "listen 8080;": f"listen 127.0.0.1:{listen};",
    }
    for old, new in replacements.items():
        assert text.count(old) == 1, f"{NGINX_CONF.name} should hold {old!r} once"
        text = text.replace(old, new)
    return text


def _main_conf(directory: Path, http_extra: str) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers may read the prefix
    temp = "\n".join(
        f"    {kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}worker_processes 1;\n"
        f"error_log {directory / 'error.log'} warn;\n"
        f"pid {directory / 'nginx.pid'};\n"
        "events { worker_connections 4096; }\n"
        "http {\n"
        "    access_log off;\n"
        f"{temp}\n"
        f"    include {directory / 'authz.conf'};\n"
        f"{http_extra}\n"
        "}\n"
    )


@dataclass
class Nginx:
    """A running nginx; ``port`` is where the file's server listens."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    def error_log(self) -> str:
        """What nginx logged (warnings and errors)."""
        path = self.directory / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _wait_listening(port: int, process: subprocess.Popen[bytes], directory: Path) -> None:
    deadline = time.monotonic() + 10
    while True:
        if process.poll() is not None:
            log = (directory / "error.log").read_text(errors="replace")
            raise RuntimeError(f"nginx exited with {process.returncode}: {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@contextmanager
def nginx(listen: int, authz: int, app: int, http_extra: str = "") -> Iterator[Nginx]:
    """Run nginx with the deployed file on ``listen``, checking with ``authz``, proxying to
    ``app``; ``http_extra`` adds server blocks (a benchmark's baseline)."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    directory = Path(tempfile.mkdtemp(prefix="authz-nginx-"))
    (directory / "authz.conf").write_text(render_authz_conf(listen, authz, app))
    (directory / "nginx.conf").write_text(_main_conf(directory, http_extra))
    command = [binary, "-p", str(directory), "-c", str(directory / "nginx.conf")]
    command += ["-e", str(directory / "error.log"), "-g", "daemon off;"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(listen, process, directory)
        yield Nginx(listen, directory, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)
