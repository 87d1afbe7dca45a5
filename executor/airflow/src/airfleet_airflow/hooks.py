"""The ``airfleet`` Airflow connection type: where the operator and its trigger find the service and a token.

A connection of type ``airfleet`` holds:

- **host**: the service URL, e.g. ``http://127.0.0.1:8470`` (or a bare host name, then **schema** is the
  scheme, ``http`` by default, and **port** the port);
- **password**: an API token with scopes ``submit,read`` (``airfleet token create --scopes submit,read``);
- **extra** (JSON, all optional): ``tls_ca`` (a PEM CA bundle to verify the service's certificate),
  ``request_timeout`` (seconds), ``default_backend`` and ``queue_backends`` (as in ``[airfleet]``).

For example ``AIRFLOW_CONN_AIRFLEET_DEFAULT='{"conn_type": "airfleet", "host": "http://127.0.0.1:8470",
"password": "aft_..."}'``. When the connection id is the default (``airfleet_default``) and no such
connection exists, the ``[airfleet]`` section of airflow.cfg is used instead: a deployment that runs the
AirfleetExecutor has one already.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from airfleet_airflow.config import AirfleetConfig, AirfleetConfigError, load_airflow_config, load_config

CONN_TYPE = "airfleet"
DEFAULT_CONN_ID = "airfleet_default"
_EXTRA = ("tls_ca", "request_timeout", "default_backend", "queue_backends")


class AirfleetConnectionError(ValueError):
    """The connection cannot be found or is not usable; the message says which field to set."""


def config_from_connection(conn: Any) -> AirfleetConfig:
    """An AirfleetConfig from an Airflow Connection (host/port/schema, password, extra)."""
    host = (conn.host or "").strip()
    if host and "://" not in host:
        host = f"{conn.schema or 'http'}://{host}" + (f":{conn.port}" if conn.port else "")
    elif host and conn.port and host.count(":") < 2:
        host = f"{host.rstrip('/')}:{conn.port}"
    extra = conn.extra_dejson if conn.extra else {}
    unknown = sorted(set(extra) - set(_EXTRA))
    values = {"url": host or None, "token": conn.password or None, **{k: extra.get(k) for k in _EXTRA}}
    problems: list[str] = []
    if not values["url"]:
        problems.append("host is empty: set it to the airfleet service URL, e.g. http://127.0.0.1:8470")
    if not values["token"]:
        problems.append("password is empty: set it to an API token with scopes submit,read "
                        "(`airfleet token create --scopes submit,read`)")
    if unknown:
        problems.append(f"extra has unknown keys {', '.join(unknown)} (allowed: {', '.join(_EXTRA)})")
    try:
        config = load_config(lambda name: values.get(name))
    except AirfleetConfigError as e:
        problems.extend(p for p in e.problems if not p.startswith(("url is required", "token or token_file")))
        config = None
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise AirfleetConnectionError(f"The Airflow connection `{conn.conn_id}` (type {CONN_TYPE}) is not usable:\n"
                                      f"{lines}")
    assert config is not None
    return config


def _fallback(conn_id: str, error: Exception) -> AirfleetConfig:
    """The [airfleet] section, for the default connection id when no such connection exists."""
    if conn_id != DEFAULT_CONN_ID:
        raise AirfleetConnectionError(f"there is no Airflow connection `{conn_id}`: create one of type {CONN_TYPE} "
                                      "(host: the service URL, password: an API token)") from error
    try:
        return load_airflow_config()
    except AirfleetConfigError as e:
        raise AirfleetConnectionError(
            f"there is no Airflow connection `{conn_id}` and the [airfleet] section of airflow.cfg is not usable "
            f"either: create a connection of type {CONN_TYPE} (host: the service URL, password: an API token), "
            f"or set [airfleet] url and token.\n{e}") from e


def _not_found(e: Exception) -> bool:
    from airflow.sdk.exceptions import AirflowNotFoundException

    return isinstance(e, AirflowNotFoundException)


def config_for(conn_id: str) -> AirfleetConfig:
    """The service's address and token for ``conn_id`` (sync: operators)."""
    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as e:
        if _not_found(e):
            return _fallback(conn_id, e)
        raise
    return config_from_connection(conn)


async def aconfig_for(conn_id: str) -> AirfleetConfig:
    """The same as ``config_for``, without blocking the event loop (triggers)."""
    try:
        conn = await BaseHook.aget_connection(conn_id)
    except Exception as e:
        if _not_found(e):
            return _fallback(conn_id, e)
        raise
    return config_from_connection(conn)


class AirfleetHook(BaseHook):
    """The ``airfleet`` connection type (registered through the provider info, so Airflow's UI offers it)."""

    conn_name_attr = "airfleet_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "airfleet"

    def __init__(self, airfleet_conn_id: str = DEFAULT_CONN_ID) -> None:
        super().__init__()
        self.airfleet_conn_id = airfleet_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["login"],
            "relabeling": {"host": "Service URL", "password": "API token"},
            "placeholders": {
                "host": "http://127.0.0.1:8470",
                "password": "aft_... (scopes submit,read)",
                "extra": '{"tls_ca": "/etc/ssl/airfleet-ca.pem", "request_timeout": 10}',
            },
        }

    def get_config(self) -> AirfleetConfig:
        return config_for(self.airfleet_conn_id)

    def get_conn(self):
        from airfleet_airflow.client import AirfleetClient

        return AirfleetClient(self.get_config())
