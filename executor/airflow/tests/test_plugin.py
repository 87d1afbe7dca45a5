"""The UI plugin's addresses: where the dashboard is, from ``[airfleet]``, and the views it gives Airflow.

The real registration (Airflow's plugins endpoint, the pages in a browser) is checked by the end-to-end suite
(integration/test/airflow-e2e.test.ts); these cover the options a deployment can get wrong.
"""

from __future__ import annotations

import pytest

from airfleet_airflow import plugin
from airfleet_airflow.config import AirfleetConfigError, load_config


def conf(**options):
    return lambda name: options.get(name)


def test_the_dashboard_defaults_to_the_services_own_ui():
    assert plugin.dashboard_url(conf(url="http://127.0.0.1:8470")) == "http://127.0.0.1:8470/ui/"
    assert plugin.dashboard_url(conf(url="https://airfleet.internal:8470/")) == "https://airfleet.internal:8470/ui/"


def test_an_explicit_dashboard_url_wins_and_ends_with_a_slash():
    got = plugin.dashboard_url(conf(url="http://10.0.0.5:8470", dashboard_url="https://fleet.example.com/ui"))
    assert got == "https://fleet.example.com/ui/"


def test_no_view_without_an_address_or_with_one_that_is_not_http(caplog):
    assert plugin.dashboard_url(conf()) is None
    assert plugin.dashboard_url(conf(dashboard_url="javascript:alert(1)")) is None
    assert "not an http(s) URL" in caplog.text


def test_a_bad_dashboard_url_is_a_config_problem_named_as_such():
    with pytest.raises(AirfleetConfigError, match="dashboard_url `ftp://x` must start with http:// or https://"):
        load_config(conf(url="http://127.0.0.1:8470", token="t", dashboard_url="ftp://x"))


def test_a_workload_page_is_the_dashboards_route_with_the_id_escaped():
    base = "http://127.0.0.1:8470/ui/"
    assert plugin.workload_page(base, "0190abcd") == "http://127.0.0.1:8470/ui/#/workloads/0190abcd"
    assert plugin.workload_page(base, "a/b?c#d") == "http://127.0.0.1:8470/ui/#/workloads/a%2Fb%3Fc%23d"


def test_the_views_go_to_the_nav_and_the_task_instance(monkeypatch):
    monkeypatch.setattr(plugin, "_airflow_conf_get", conf(url="http://127.0.0.1:8470"))
    monkeypatch.setattr(plugin, "_airflow_base_path", lambda: "/airflow")
    views = plugin.AirfleetPlugin().external_views
    assert [(v["destination"], v["url_route"], v["href"]) for v in views] == [
        ("nav", "airfleet", "http://127.0.0.1:8470/ui/"),
        ("task_instance", "airfleet-workload", "/airflow/airfleet/workload/{DAG_ID}/{RUN_ID}/{TASK_ID}/{MAP_INDEX}"),
    ]
    assert views[0]["nav_top_level"] is True  # its own item in the navigation bar
    assert all(v["icon"] == "http://127.0.0.1:8470/ui/favicon.svg" for v in views)


def test_without_a_url_the_plugin_adds_nothing(monkeypatch):
    monkeypatch.setattr(plugin, "_airflow_conf_get", conf())
    p = plugin.AirfleetPlugin()
    assert p.external_views == [] and p.fastapi_apps == []
