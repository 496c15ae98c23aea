"""A real Label Studio server for the integration tests, and the few REST calls the exchange needs.

Label Studio runs from its own virtual environment (``make setup-label-studio``: its pins clash with ours),
as a subprocess bound to 127.0.0.1 on a free port, with its sqlite database in a temporary folder, so a test
never touches a user's Label Studio data. ``running_label_studio`` always stops it, even when the test fails.

Authentication: Label Studio 1.23 turns legacy API tokens off for new organisations and asks for personal
access tokens (JWT: a session login, a refresh token, then short-lived access tokens). A throw-away server
needs none of that: ``--enable-legacy-api-token`` with ``--user-token`` gives the admin a fixed token that
never expires, sent as ``Authorization: Token <token>``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
EXECUTABLE_VARIABLE = "LABEL_STUDIO_EXE"  # where `make test-integration` says Label Studio's executable is
DEFAULT_EXECUTABLE = ROOT / ".venv-label-studio" / "bin" / "label-studio"  # what `make setup-label-studio` makes
START_TIMEOUT_S = 240.0  # ~8 s from the migrated template; ~60 s without it (the database is migrated first)
TEMPLATE = (
    "label-studio-template/label_studio.sqlite3"  # in the venv: tests/integration/label_studio_env.sh migrates it once
)
DATABASE = "label_studio.sqlite3"  # Label Studio's sqlite file in its data folder
STOP_TIMEOUT_S = 15.0  # then SIGKILL
REQUEST_TIMEOUT_S = 120.0  # one API call; an export of a few hundred tasks takes about a second
LOG_TAIL_CHARS = 4000  # of the server's log, in the message when it does not come up
USER = "integration@example.com"
PASSWORD = "integration-password"  # a throw-away server on 127.0.0.1: no secret
TOKEN = "integration-test-token"  # the admin's legacy API token (--user-token wants more than 5 characters)


def label_studio_executable() -> Path | None:
    """Label Studio's ``label-studio`` command: ``$LABEL_STUDIO_EXE`` when set (it must exist), else the one
    ``make setup-label-studio`` installs, else None (the tests that need it are skipped)."""
    if named := os.environ.get(EXECUTABLE_VARIABLE):
        if not Path(named).is_file():
            raise FileNotFoundError(f"${EXECUTABLE_VARIABLE}={named}: no such file (make setup-label-studio)")
        return Path(named)
    return DEFAULT_EXECUTABLE if DEFAULT_EXECUTABLE.is_file() else None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (Label Studio would move to the next one if it were taken)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_environment(data_dir: Path) -> dict[str, str]:
    """The server's environment: ours without our venv's Python settings, its data in ``data_dir``, and no
    call home (the version check and analytics would reach for the internet)."""
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    environment.update(
        LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),
        LATEST_VERSION_CHECK="false",
        COLLECT_ANALYTICS="false",
    )
    return environment


def start_command(executable: Path, port: int) -> list[str]:
    """``label-studio start`` headless on 127.0.0.1:``port``, creating the admin with a fixed legacy token."""
    return [
        str(executable), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
        "--username", USER, "--password", PASSWORD, "--user-token", TOKEN, "--enable-legacy-api-token",
    ]  # fmt: skip


def copy_migrated_database(executable: Path, data_dir: Path) -> bool:
    """Start from the empty migrated database that ``make setup-label-studio`` keeps beside the executable's
    venv, when there is one: migrating a new one takes most of a start (~50 s). True when copied."""
    template = executable.parent.parent / TEMPLATE
    if template.is_file():
        shutil.copyfile(template, data_dir / DATABASE)
    return template.is_file()


def log_tail(log_path: Path) -> str:
    """The end of the server's log, for a failure message."""
    text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else "(no log)"
    return text[-LOG_TAIL_CHARS:]


def wait_until_up(url: str, server: subprocess.Popen, log_path: Path, timeout_s: float) -> float:
    """Seconds until ``/health`` answers; fails with the log's tail if the server exits or takes too long."""
    started = time.monotonic()
    while (waited := time.monotonic() - started) < timeout_s:
        if server.poll() is not None:
            raise RuntimeError(
                f"Label Studio exited with status {server.returncode} before answering at {url}; "
                f"its log ({log_path}) ends:\n{log_tail(log_path)}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return waited
        time.sleep(0.5)
    raise RuntimeError(
        f"Label Studio did not answer at {url}/health within {timeout_s:.0f} s; its log ({log_path}) ends:\n"
        f"{log_tail(log_path)}"
    )


def stop(server: subprocess.Popen) -> None:
    """Stop the server's process group: SIGTERM, then SIGKILL after ``STOP_TIMEOUT_S``."""
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=STOP_TIMEOUT_S)


@contextlib.contextmanager
def running_label_studio(executable: Path, data_dir: Path) -> Iterator[LabelStudio]:
    """A started server answering its API, stopped on exit whatever happened; its log is ``data_dir/server.log``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = data_dir / "server.log"
    copy_migrated_database(executable, data_dir)
    with open(log_path, "wb") as log:
        # Its own session (process group), so that stopping it reaches anything it started.
        server = subprocess.Popen(
            start_command(executable, port),
            env=server_environment(data_dir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        start_s = wait_until_up(url, server, log_path, START_TIMEOUT_S)
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Token {TOKEN}"}, timeout=REQUEST_TIMEOUT_S
        ) as client:
            yield LabelStudio(client, start_s, log_path)
    finally:
        stop(server)


class LabelStudio:
    """The REST calls of the exchange on a running server; each checks its status and returns the JSON."""

    def __init__(self, client: httpx.Client, start_s: float, log_path: Path):
        self.client = client
        self.start_s = start_s  # how long the server took to come up, for the timing report
        self.log_path = log_path

    def _json(self, method: str, path: str, **arguments):
        """The JSON of a call that must succeed; otherwise an error with the status, the body and the log's tail."""
        response = self.client.request(method, path, **arguments)
        if response.is_error:
            raise AssertionError(
                f"Label Studio: {method} {path} answered {response.status_code}: {response.text[:2000]}\n"
                f"its log ends:\n{log_tail(self.log_path)}"
            )
        return response.json()

    def create_project(self, title: str, label_config: str) -> dict:
        """A new project with ``label_config`` (the XML of ``labelstudio.xml``)."""
        return self._json("POST", "/api/projects/", json={"title": title, "label_config": label_config})

    def project(self, project_id: int) -> dict:
        """The project as the server holds it (``parsed_label_config`` has the labels it understood)."""
        return self._json("GET", f"/api/projects/{project_id}/")

    def import_tasks(self, project_id: int, tasks: list) -> dict:
        """Import tasks (with their ``predictions``) as a JSON body, as the Import dialog does with a file."""
        return self._json("POST", f"/api/projects/{project_id}/import", json=tasks)

    def tasks(self, project_id: int, page_size: int = 100) -> list[dict]:
        """All the project's tasks with their predictions and annotations (``fields=all``), page after page."""
        tasks: list[dict] = []
        while True:
            page = self._json(
                "GET",
                "/api/tasks/",
                params={
                    "project": project_id,
                    "fields": "all",
                    "page": len(tasks) // page_size + 1,
                    "page_size": page_size,
                },
            )
            tasks += page["tasks"]
            if not page["tasks"] or len(tasks) >= page["total"]:
                return tasks

    def annotate(self, task_id: int, result: list[dict], cancelled: bool = False) -> dict:
        """Submit an annotation (``cancelled``: the annotator skipped the task) as the labelling page does."""
        body = {"result": result, "was_cancelled": cancelled}
        return self._json("POST", f"/api/tasks/{task_id}/annotations/", json=body)

    def export_json(self, project_id: int) -> bytes:
        """Export > JSON: the tasks that have annotations, as the file a user downloads."""
        response = self.client.get(f"/api/projects/{project_id}/export", params={"exportType": "JSON"})
        if response.is_error:
            raise AssertionError(f"Label Studio: export answered {response.status_code}: {response.text[:2000]}")
        return response.content
