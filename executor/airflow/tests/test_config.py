import os

import pytest

from airfleet_airflow.config import AirfleetConfigError, load_config


def cfg(**options):
    return load_config(lambda name: options.get(name))


def test_minimal_config_gets_the_documented_defaults():
    c = cfg(url="http://127.0.0.1:8470/", token="aft_x_y")
    assert c.url == "http://127.0.0.1:8470"
    assert c.default_backend == "pool"
    assert c.request_timeout == 10.0
    assert c.feed_wait_ms == 200
    assert c.task_command == ("python3", "-m", "airfleet_airflow.run")
    assert c.backend_for("anything") == "pool"
    assert "aft_x_y" not in repr(c)  # the token never shows in a log line of the config


def test_every_problem_is_listed_at_once():
    with pytest.raises(AirfleetConfigError) as e:
        cfg(default_backend="kubernetes", request_timeout="soon", feed_wait_ms="99999",
            queue_backends="gpu=nomad, broken, heavy=ecs")
    message = str(e.value)
    for expected in ["url is required", "token or token_file is required", "default_backend `kubernetes`",
                     "request_timeout `soon`", "feed_wait_ms is 99999", "`broken` is not `queue=backend`",
                     "queue `heavy` routes to `ecs`", "AIRFLOW__AIRFLEET__"]:
        assert expected in message
    assert len(e.value.problems) == 7


def test_queue_routing_as_pairs_or_json():
    c = cfg(url="https://airfleet.internal", token="t", queue_backends="gpu=nomad, heavy=batch")
    assert c.backend_for("gpu") == "nomad" and c.backend_for("heavy") == "batch" and c.backend_for("x") == "pool"
    c = cfg(url="https://airfleet.internal", token="t", queue_backends='{"gpu": "local"}', default_backend="nomad")
    assert c.backend_for("gpu") == "local" and c.backend_for("x") == "nomad"
    with pytest.raises(AirfleetConfigError, match="not valid JSON"):
        cfg(url="https://a", token="t", queue_backends="{gpu")


def test_token_file_must_be_private_and_not_empty(tmp_path):
    f = tmp_path / "token"
    f.write_text("aft_file_token\n")
    os.chmod(f, 0o600)
    assert cfg(url="http://a:1", token_file=str(f)).token == "aft_file_token"
    os.chmod(f, 0o644)
    with pytest.raises(AirfleetConfigError, match="readable by others .*chmod 600"):
        cfg(url="http://a:1", token_file=str(f))
    with pytest.raises(AirfleetConfigError, match="cannot be read"):
        cfg(url="http://a:1", token_file=str(tmp_path / "missing"))
    with pytest.raises(AirfleetConfigError, match="either token or token_file"):
        cfg(url="http://a:1", token="x", token_file=str(f))


def test_bad_urls_and_files_are_named(tmp_path):
    with pytest.raises(AirfleetConfigError) as e:
        cfg(url="airfleet:8470", token="t", tls_ca=str(tmp_path / "ca.pem"), execution_api_server_url="localhost")
    assert "url `airfleet:8470` must start with http" in str(e.value)
    assert "tls_ca" in str(e.value) and "execution_api_server_url" in str(e.value)


def test_task_command_is_split_like_a_shell():
    c = cfg(url="http://a:1", token="t", task_command="/opt/venv/bin/python -m airfleet_airflow.run")
    assert c.task_command == ("/opt/venv/bin/python", "-m", "airfleet_airflow.run")
