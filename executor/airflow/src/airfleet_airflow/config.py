"""The ``[airfleet]`` section of airflow.cfg, validated once, every problem listed at once."""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
from dataclasses import dataclass, field
from typing import Callable, Mapping

SECTION = "airfleet"
BACKENDS = ("pool", "local", "nomad", "batch")
_QUEUE = re.compile(r"^[A-Za-z0-9_.:@/-]{1,256}$")

# Every option, with what it is for: used for the error messages and the README.
OPTIONS: dict[str, str] = {
    "url": "the airfleet service URL, e.g. http://127.0.0.1:8470",
    "token": "an API token with scopes submit,read (`airfleet token create --scopes submit,read`)",
    "token_file": "a file holding the API token (mode 0600), instead of `token`",
    "tls_ca": "a CA bundle (PEM) to verify the service's TLS certificate; default: the system store",
    "default_backend": "backend of tasks that name none: pool | local | nomad | batch (default pool)",
    "default_queue": "airfleet queue of tasks on Airflow's default queue (default: the same name)",
    "queue_backends": "queue -> backend routing, `gpu=nomad, heavy=batch` or a JSON object",
    "request_timeout": "seconds one HTTP request to the service may take (default 10)",
    "feed_wait_ms": "how long one sync() may long-poll the change feed, ms (default 200, max 5000)",
    "image": "container image of tasks that name none (docker runtime, Nomad, Batch)",
    "task_command": "how a worker starts a task (default `python3 -m airfleet_airflow.run`)",
    "execution_api_server_url": "the Execution API URL as tasks reach it (default: Airflow's own)",
    "max_infra_retries": "the service's retries of failures before start (default: the service's)",
    "dashboard_url": "the airfleet dashboard as browsers reach it, for Airflow's UI (default: url + /ui/)",
}


class AirfleetConfigError(ValueError):
    """The ``[airfleet]`` section is missing something or holds a bad value; the message lists every problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"The [{SECTION}] section of airflow.cfg is not usable ({len(problems)} problem"
            f"{'s' if len(problems) != 1 else ''}):\n{lines}\n"
            f"Set each option in airflow.cfg under [{SECTION}] or as AIRFLOW__AIRFLEET__<OPTION>."
        )


@dataclass(frozen=True)
class AirfleetConfig:
    url: str
    token: str = field(repr=False)
    tls_ca: str | None = None
    default_backend: str = "pool"
    default_queue: str | None = None
    queue_backends: Mapping[str, str] = field(default_factory=dict)
    request_timeout: float = 10.0
    feed_wait_ms: int = 200
    image: str | None = None
    task_command: tuple[str, ...] = ("python3", "-m", "airfleet_airflow.run")
    execution_api_server_url: str | None = None
    max_infra_retries: int | None = None

    def backend_for(self, queue: str) -> str:
        return self.queue_backends.get(queue, self.default_backend)


def _parse_routing(raw: str, problems: list[str]) -> dict[str, str]:
    raw = raw.strip()
    if not raw:
        return {}
    pairs: dict[str, object]
    if raw.startswith("{"):
        try:
            pairs = json.loads(raw)
        except json.JSONDecodeError as e:
            problems.append(f"queue_backends is not valid JSON ({e.msg} at {e.pos}); use `q=backend, q2=backend`")
            return {}
    else:
        pairs = {}
        for item in filter(None, (p.strip() for p in raw.split(","))):
            queue, sep, backend = item.partition("=")
            if not sep:
                problems.append(f"queue_backends: `{item}` is not `queue=backend`")
                continue
            pairs[queue.strip()] = backend.strip()
    routing: dict[str, str] = {}
    for queue, backend in pairs.items():
        if not isinstance(queue, str) or not _QUEUE.match(queue):
            problems.append(f"queue_backends: `{queue}` is not a valid queue name (letters, digits, _ . : @ / -)")
        elif backend not in BACKENDS:
            problems.append(f"queue_backends: queue `{queue}` routes to `{backend}`; choose one of {', '.join(BACKENDS)}")
        else:
            routing[queue] = str(backend)
    return routing


def _read_token(path: str, problems: list[str]) -> str:
    try:
        st = os.stat(path)
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
    except OSError as e:
        problems.append(f"token_file {path} cannot be read ({e.strerror}); point it at the file holding the token")
        return ""
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        problems.append(f"token_file {path} is readable by others (mode {oct(st.st_mode & 0o777)}); chmod 600 it")
    if not token:
        problems.append(f"token_file {path} is empty")
    return token


def load_config(get: Callable[[str], str | None]) -> AirfleetConfig:
    """Builds the config from ``get(option)`` (airflow.cfg or the environment); raises AirfleetConfigError."""
    problems: list[str] = []

    def opt(name: str) -> str | None:
        value = get(name)
        if value is None:
            return None
        value = str(value).strip()
        return value or None

    url = opt("url")
    if not url:
        problems.append(f"url is required: {OPTIONS['url']}")
    elif not re.match(r"^https?://[^\s/]+", url):
        problems.append(f"url `{url}` must start with http:// or https:// and name a host")

    token = opt("token")
    token_file = opt("token_file")
    if token and token_file:
        problems.append("set either token or token_file, not both")
    elif token_file:
        token = _read_token(token_file, problems)
    elif not token:
        problems.append(f"token or token_file is required: {OPTIONS['token']}")

    tls_ca = opt("tls_ca")
    if tls_ca and not os.path.isfile(tls_ca):
        problems.append(f"tls_ca {tls_ca} is not a file; give the path of a PEM CA bundle")

    default_backend = opt("default_backend") or "pool"
    if default_backend not in BACKENDS:
        problems.append(f"default_backend `{default_backend}` is unknown; choose one of {', '.join(BACKENDS)}")

    default_queue = opt("default_queue")
    if default_queue and not _QUEUE.match(default_queue):
        problems.append(f"default_queue `{default_queue}` is not a valid queue name (letters, digits, _ . : @ / -)")

    def number(name: str, default: float, lo: float, hi: float, integer: bool) -> float:
        raw = opt(name)
        if raw is None:
            return default
        try:
            value = int(raw) if integer else float(raw)
        except ValueError:
            problems.append(f"{name} `{raw}` is not a {'whole ' if integer else ''}number")
            return default
        if not lo <= value <= hi:
            problems.append(f"{name} is {raw}; it must be between {lo:g} and {hi:g}")
            return default
        return value

    request_timeout = number("request_timeout", 10.0, 0.5, 300, integer=False)
    feed_wait_ms = int(number("feed_wait_ms", 200, 0, 5_000, integer=True))
    max_retries_raw = opt("max_infra_retries")
    max_infra_retries = int(number("max_infra_retries", 0, 0, 10, integer=True)) if max_retries_raw else None

    command_raw = opt("task_command")
    task_command: tuple[str, ...] = ("python3", "-m", "airfleet_airflow.run")
    if command_raw:
        try:
            task_command = tuple(shlex.split(command_raw))
        except ValueError as e:
            problems.append(f"task_command cannot be split into arguments ({e})")
        if not task_command:
            problems.append("task_command is empty")

    api_url = opt("execution_api_server_url")
    if api_url and not re.match(r"^https?://[^\s/]+", api_url):
        problems.append(f"execution_api_server_url `{api_url}` must start with http:// or https://")

    routing = _parse_routing(opt("queue_backends") or "", problems)

    dashboard = opt("dashboard_url")
    if dashboard and not re.match(r"^https?://[^\s/]+", dashboard):
        problems.append(f"dashboard_url `{dashboard}` must start with http:// or https:// and name a host")

    if problems:
        raise AirfleetConfigError(problems)
    assert url and token
    return AirfleetConfig(
        url=url.rstrip("/"),
        token=token,
        tls_ca=tls_ca,
        default_backend=default_backend,
        default_queue=default_queue,
        queue_backends=routing,
        request_timeout=request_timeout,
        feed_wait_ms=feed_wait_ms,
        image=opt("image"),
        task_command=task_command,
        execution_api_server_url=api_url,
        max_infra_retries=max_infra_retries,
    )


def load_airflow_config(team_conf=None) -> AirfleetConfig:
    """The config from Airflow's own (airflow.cfg, AIRFLOW__AIRFLEET__* variables)."""
    if team_conf is None:
        from airflow.configuration import conf as team_conf
    return load_config(lambda name: team_conf.get(SECTION, name, fallback=None))
