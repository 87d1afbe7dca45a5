"""Turns Airflow's ExecuteTask workloads into airfleet workload inputs (POST /v1/workloads/batch)."""

from __future__ import annotations

import hashlib
from typing import Any

from airfleet_airflow.config import BACKENDS, AirfleetConfig

# The ExecuteTask JSON carries the task's bearer token, so it travels in the service's write-only secrets
# (stored encrypted, given to the task as an environment variable, never returned by a read, the feed or a
# log). Which workload field holds them is named here and nowhere else.
SECRET_FIELD = "secretEnv"
WORKLOAD_JSON_VAR = "AIRFLEET_WORKLOAD_JSON"
EXECUTION_API_VAR = "AIRFLOW__CORE__EXECUTION_API_SERVER_URL"
# A task parses its DAG again on the worker, and Airflow refuses a DAG whose tasks name an executor the
# worker's own `[core] executor` does not list: the scheduler's list goes with every task.
EXECUTORS_VAR = "AIRFLOW__CORE__EXECUTOR"

KEY_PREFIX = "airflow/"
_KEY_LIMIT = 512
_ENV_NAME = __import__("re").compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESOURCES = {"cpu": (int, float), "memoryMb": (int,), "gpus": (int,)}
_TIMEOUTS = ("pendingSeconds", "runSeconds")
_ALLOWED = ("backend", "queue", "image", "resources", "env", "execConfig", "timeouts", "maxInfraRetries")


class InvalidExecutorConfig(ValueError):
    """A task's ``executor_config["airfleet"]`` is not usable; the message says what to change."""


def task_key(ti_key: Any, prefix: str, suffix: str = "") -> str:
    """``prefix`` + dag/run/task/map index/try of a task instance + ``suffix``, hashed down to the service's
    key limit when the ids are long."""
    key = (f"{prefix}{ti_key.dag_id}/{ti_key.run_id}/{ti_key.task_id}/{ti_key.map_index}"
           f"/try-{ti_key.try_number}{suffix}")
    if len(key) <= _KEY_LIMIT:
        return key
    whole = hashlib.sha256(key.encode()).hexdigest()[:24]
    return f"{prefix}{ti_key.dag_id[:200]}/{whole}/try-{ti_key.try_number}{suffix}"


_TRY_OF_KEY = __import__("re").compile(r"/try-(\d+)/[0-9a-f]{12}$")


def try_of_key(key: str) -> int | None:
    """The try number a workload key (``workload_key``) was made for; None for a key of another shape."""
    found = _TRY_OF_KEY.search(key)
    return int(found.group(1)) if found else None


def workload_key(ti_key: Any, token: str) -> str:
    """Stable across HTTP retries of one queueing (same token), new when the scheduler queues the same try
    again (stuck-in-queued requeue mints a new token): TI key + try + a short hash of the token."""
    return task_key(ti_key, KEY_PREFIX, "/" + hashlib.sha256(token.encode()).hexdigest()[:12])


def task_options(executor_config: Any) -> dict[str, Any]:
    """The ``airfleet`` part of a task's executor_config, checked (unknown keys and bad types refused)."""
    if not executor_config:
        return {}
    if not isinstance(executor_config, dict):
        raise InvalidExecutorConfig(f"executor_config must be a dict, not {type(executor_config).__name__}")
    options = executor_config.get("airfleet") or {}
    if not isinstance(options, dict):
        raise InvalidExecutorConfig('executor_config["airfleet"] must be a dict')
    return check_options(options, 'executor_config["airfleet"]')


def env_problems(env: Any, name: str) -> list[str]:
    """What is wrong with an environment (a dict of variable names to strings); ``name`` is its setting."""
    if not isinstance(env, dict):
        return [f"{name} must be a dict of strings"]
    problems: list[str] = []
    for k, v in env.items():
        if not isinstance(k, str) or not _ENV_NAME.match(k):
            problems.append(f"{name} name `{k}` must match [A-Za-z_][A-Za-z0-9_]*")
        elif not isinstance(v, str):
            problems.append(f"{name} {k} must be a string")
        elif k == WORKLOAD_JSON_VAR:
            problems.append(f"{name} {k} is reserved for the workload itself")
    return problems


def check_options(options: dict[str, Any], where: str) -> dict[str, Any]:
    """Checks workload options (the keys of ``_ALLOWED``); raises InvalidExecutorConfig listing every problem,
    prefixed with ``where`` (the setting the user wrote)."""
    problems = [f"unknown key `{k}` (allowed: {', '.join(_ALLOWED)})" for k in options if k not in _ALLOWED]
    if "backend" in options and options["backend"] not in BACKENDS:
        problems.append(f"backend `{options['backend']}` is unknown; choose one of {', '.join(BACKENDS)}")
    for name in ("queue", "image"):
        if name in options and not isinstance(options[name], str):
            problems.append(f"{name} must be a string")
    for name, kinds in _RESOURCES.items():
        value = (options.get("resources") or {}).get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds) or value < 0):
            problems.append(f"resources.{name} must be a non-negative {'number' if float in kinds else 'integer'}")
    for extra in set(options.get("resources") or {}) - set(_RESOURCES):
        problems.append(f"resources.{extra} is unknown (allowed: {', '.join(_RESOURCES)})")
    problems.extend(env_problems(options.get("env") or {}, "env"))
    if not isinstance(options.get("execConfig") or {}, dict):
        problems.append("execConfig must be a dict (per-backend overrides, e.g. {'docker': {...}})")
    for name in set(options.get("timeouts") or {}) - set(_TIMEOUTS):
        problems.append(f"timeouts.{name} is unknown (allowed: {', '.join(_TIMEOUTS)})")
    if problems:
        raise InvalidExecutorConfig(f"{where}: " + "; ".join(problems))
    return options


def build_workload_input(workload: Any, config: AirfleetConfig, *, airflow_default_queue: str,
                         execution_api_url: str, executors: str | None = None) -> dict[str, Any]:
    """The airfleet workload for one ExecuteTask. Raises InvalidExecutorConfig for a bad executor_config."""
    ti = workload.ti
    options = task_options(getattr(ti, "executor_config", None))
    queue = options.get("queue") or ti.queue or airflow_default_queue
    if config.default_queue and queue == airflow_default_queue and "queue" not in options:
        queue = config.default_queue
    backend = options.get("backend") or config.backend_for(queue)
    env = {EXECUTION_API_VAR: config.execution_api_server_url or execution_api_url,
           **({EXECUTORS_VAR: executors} if executors else {}), **(options.get("env") or {})}
    secrets = {WORKLOAD_JSON_VAR: workload.model_dump_json()}
    body: dict[str, Any] = {
        "key": workload_key(ti.key, workload.token),
        "command": list(config.task_command),
        "env": env,
        "queue": queue,
        "backend": backend,
        "poolSlots": max(1, min(int(ti.pool_slots or 1), 1024)),
        "priorityWeight": max(-1_000_000, min(int(ti.priority_weight or 1), 1_000_000)),
        "resources": {k: v for k, v in (options.get("resources") or {}).items() if v is not None},
        "execConfig": options.get("execConfig") or {},
        "timeouts": options.get("timeouts") or {},
    }
    image = options.get("image") or config.image
    if image:
        body["image"] = image
    retries = options.get("maxInfraRetries", config.max_infra_retries)
    if retries is not None:
        body["maxInfraRetries"] = retries
    body[SECRET_FIELD] = {**body.get(SECRET_FIELD, {}), **secrets}
    return body
