"""The airfleet dashboard inside Airflow 3's UI.

Registered through the ``airflow.plugins`` entry point (pyproject.toml), so installing the package is all it
takes. It adds:

- an **external view** in Airflow's navigation ("airfleet"): the service's dashboard (``/ui/``) in Airflow's
  page frame. The service must allow Airflow's origin to frame it: ``AIRFLEET_UI_FRAME_ANCESTORS`` on the
  service (see README "Dashboard");
- a **task instance tab** ("airfleet workload"): Airflow fills in the task instance's ids, and a small
  FastAPI app of this plugin (``/airfleet/workload/...``, behind Airflow's own authentication and DAG
  permissions) looks up its ``external_executor_id`` — the workload id the executor recorded — and redirects
  to that workload's page in the dashboard.

The dashboard's address is ``[airfleet] dashboard_url``, by default ``[airfleet] url`` + ``/ui/``: set it
when browsers reach the service by another address than the scheduler does. Plugins are imported by every
Airflow component (scheduler, dag-processor, task runner), so nothing heavy happens at import: the views are
built when the api-server first asks for them.
"""

from __future__ import annotations

import html
import logging
from functools import cached_property
from typing import Any, Callable
from urllib.parse import quote, urlparse

from airflow.plugins_manager import AirflowPlugin

from .config import SECTION

log = logging.getLogger(__name__)

#: Where this plugin's FastAPI app is mounted in the api-server.
URL_PREFIX = "/airfleet"


def dashboard_url(get: Callable[[str], str | None]) -> str | None:
    """The dashboard's address from ``[airfleet] dashboard_url``, else ``[airfleet] url`` + ``/ui/``; None if neither."""
    explicit = (get("dashboard_url") or "").strip()
    url = (get("url") or "").strip()
    base = explicit or (f"{url.rstrip('/')}/ui/" if url else "")
    if not base:
        return None
    parsed = urlparse(base)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        log.warning("airfleet: [%s] dashboard_url %r is not an http(s) URL; the dashboard view is off", SECTION, base)
        return None
    return base if base.endswith("/") else f"{base}/"


def workload_page(base: str, workload_id: str) -> str:
    """The dashboard's page of one workload (its router reads the fragment)."""
    return f"{base}#/workloads/{quote(workload_id, safe='')}"


def _airflow_conf_get(option: str) -> str | None:
    from airflow.configuration import conf

    return conf.get(SECTION, option, fallback=None)


def _airflow_base_path() -> str:
    """The path Airflow is served under (``[api] base_url``), so the tab's address works behind a prefix too."""
    from airflow.configuration import conf

    return urlparse(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")


def build_app(base: str):
    """The FastAPI app behind the task instance tab: task instance → its workload's page in the dashboard."""
    from fastapi import Depends, FastAPI
    from fastapi.responses import HTMLResponse, RedirectResponse, Response
    from sqlalchemy import select

    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    app = FastAPI(title="airfleet", openapi_url=None, docs_url=None, redoc_url=None)

    @app.get(
        "/workload/{dag_id}/{run_id}/{task_id}/{map_index}",
        dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE))],
    )
    def workload_of_task_instance(dag_id: str, run_id: str, task_id: str, map_index: str) -> Response:
        # Airflow leaves {MAP_INDEX} as it is for a task that is not mapped.
        index = int(map_index) if map_index.lstrip("-").isdigit() else -1
        with create_session() as session:
            row = session.execute(
                select(TaskInstance.external_executor_id, TaskInstance.executor, TaskInstance.state).where(
                    TaskInstance.dag_id == dag_id,
                    TaskInstance.run_id == run_id,
                    TaskInstance.task_id == task_id,
                    TaskInstance.map_index == index,
                )
            ).first()
        if row is not None and row.external_executor_id:
            return RedirectResponse(workload_page(base, row.external_executor_id), status_code=302)
        if row is None:
            why = "Airflow has no such task instance."
        elif row.executor and "Airfleet" not in row.executor:
            why = f"This task runs on {html.escape(row.executor)}, not on airfleet."
        else:
            why = (
                f"Airflow has not handed this task to airfleet yet (its state is {html.escape(str(row.state))}); "
                "the link works once it is queued there."
            )
        return HTMLResponse(
            "<!doctype html><meta charset=utf-8><title>airfleet</title>"
            "<body style='font-family:system-ui,sans-serif;padding:1rem'>"
            f"<p><strong>No airfleet workload for this task instance.</strong> {why}</p>"
            f"<p><a href='{html.escape(base)}#/workloads' target='_top'>All workloads in the airfleet dashboard</a></p>",
            status_code=404,
        )

    return app


class AirfleetPlugin(AirflowPlugin):
    """The airfleet dashboard in Airflow's navigation, and each task instance's workload one click away."""

    name = "airfleet"

    @cached_property
    def _base(self) -> str | None:
        try:
            return dashboard_url(_airflow_conf_get)
        except Exception as e:  # a broken config must not break Airflow's UI; the executor reports it
            log.warning("airfleet: cannot read [%s] for the dashboard view: %s", SECTION, e)
            return None

    @cached_property
    def external_views(self) -> list[dict[str, Any]]:  # type: ignore[override]
        base = self._base
        if base is None:
            log.warning("airfleet: [%s] url is not set; the dashboard is not added to Airflow's UI", SECTION)
            return []
        return [
            {
                "name": "airfleet",
                "href": base,
                "url_route": "airfleet",
                "destination": "nav",
                # An item of its own in the navigation bar, not one entry of the "Plugins" menu.
                "nav_top_level": True,
                "icon": f"{base}favicon.svg",
            },
            {
                "name": "airfleet workload",
                "href": f"{_airflow_base_path()}{URL_PREFIX}/workload/{{DAG_ID}}/{{RUN_ID}}/{{TASK_ID}}/{{MAP_INDEX}}",
                "url_route": "airfleet-workload",
                "destination": "task_instance",
                "icon": f"{base}favicon.svg",
            },
        ]

    @cached_property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        base = self._base
        if base is None:
            return []
        return [{"app": build_app(base), "url_prefix": URL_PREFIX, "name": "airfleet"}]
