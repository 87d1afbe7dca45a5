"""`airfleet-airflow-db-url` as Airflow runs it (a process; stdout is the value), against moto's Secrets Manager.

moto's server comes from integration/.venv (scripts/setup-python.sh, which CI runs before this suite).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest
from sqlalchemy.engine import make_url

from conftest import REPO, free_port, wait_until

MOTO_SERVER = REPO / "integration" / ".venv" / "bin" / "moto_server"
PASSWORD = "p@ss/w:rd%?#&= x"  # every character a URL must quote


@pytest.fixture(scope="module")
def moto():
    if not MOTO_SERVER.exists():
        msg = f"no moto server at {MOTO_SERVER}: run `bash scripts/setup-python.sh`"
        print(f"test_db_url: skipped: {msg}", file=sys.stderr)
        pytest.skip(msg)
    port = free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    endpoint = f"http://127.0.0.1:{port}"
    import urllib.request

    wait_until("moto's server", lambda: urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).status == 200, 30)
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    import boto3

    client = boto3.client(
        "secretsmanager",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    yield client, env
    proc.terminate()
    proc.wait(10)
    log.close()


@pytest.fixture
def ca_file(tmp_path):
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return str(path)


def secret(client, value: str | None) -> str:
    name = f"airfleet/test/database-airflow-{os.urandom(4).hex()}"
    return client.create_secret(Name=name, **({"SecretString": value} if value is not None else {}))["ARN"]


def run(env: dict[str, str], *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    # Only what the test gives: no PG* or AWS_* variables of the machine running the tests.
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_"))}
    return subprocess.run(
        [sys.executable, "-m", "airfleet_airflow.db_url", *args],
        env={**base, **env, **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_prints_the_url_with_the_password_quoted_and_tls_verified(moto, ca_file):
    client, env = moto
    arn = secret(client, json.dumps({"username": "airfleet_airflow", "password": PASSWORD}))
    out = run(env, "--secret-arn", arn, "--host", "db.internal", "--dbname", "airfleet", "--sslrootcert", ca_file)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    assert not out.stdout.endswith("\n")  # Airflow takes stdout as the value, as it is
    url = make_url(out.stdout)
    assert (url.drivername, url.username, url.password) == ("postgresql+psycopg2", "airfleet_airflow", PASSWORD)
    assert (url.host, url.port, url.database) == ("db.internal", 5432, "airfleet")
    assert dict(url.query) == {"sslmode": "verify-full", "sslrootcert": ca_file}


def test_host_port_and_database_come_from_the_options_then_the_secret_then_pg_variables(moto, ca_file):
    client, env = moto
    rds_layout = {"username": "u", "password": "pw", "host": "from-secret", "port": 6432, "dbname": "secretdb"}
    arn = secret(client, json.dumps(rds_layout))
    pg = {"PGHOST": "from-env", "PGPORT": "7432", "PGDATABASE": "envdb", "PGSSLROOTCERT": ca_file}
    url = make_url(run(env, "--secret-arn", arn, extra_env=pg).stdout)
    assert (url.host, url.port, url.database, url.query["sslrootcert"]) == ("from-secret", 6432, "secretdb", ca_file)
    url = make_url(run(env, "--secret-arn", arn, "--host", "opt", "--port", "5433", extra_env=pg).stdout)
    assert (url.host, url.port, url.database) == ("opt", 5433, "secretdb")
    plain = secret(client, json.dumps({"username": "u", "password": "pw"}))
    url = make_url(run(env, "--secret-arn", plain, extra_env=pg).stdout)
    assert (url.host, url.port, url.database) == ("from-env", 7432, "envdb")


def test_async_gives_psycopg_3_with_the_same_tls(moto, ca_file):
    client, env = moto
    arn = secret(client, json.dumps({"username": "u", "password": "pw"}))
    out = run(env, "--secret-arn", arn, "--host", "h", "--dbname", "d", "--sslrootcert", ca_file, "--async")
    url = make_url(out.stdout)
    assert url.drivername == "postgresql+psycopg"
    assert dict(url.query) == {"sslmode": "verify-full", "sslrootcert": ca_file}


def test_a_secret_with_no_value_yet_says_to_run_create_role(moto):
    client, env = moto
    arn = secret(client, None)
    out = run(env, "--secret-arn", arn, "--host", "h", "--dbname", "d", "--sslmode", "require")
    assert out.returncode == 1
    assert out.stdout == ""
    assert f"secret {arn} has no value yet" in out.stderr
    assert "airfleet database create-role --for airflow" in out.stderr


def test_a_missing_secret_is_named(moto):
    _, env = moto
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:airfleet/test/nope-AbCdEf"
    out = run(env, "--secret-arn", arn, "--host", "h", "--dbname", "d")
    assert out.returncode == 1
    assert f"secret {arn} does not exist" in out.stderr


def test_a_value_that_is_not_json_is_refused_without_echoing_it(moto):
    client, env = moto
    arn = secret(client, "hunter2-plain-password")
    out = run(env, "--secret-arn", arn, "--host", "h", "--dbname", "d")
    assert out.returncode == 2
    assert f"secret {arn} is not JSON" in out.stderr
    assert "hunter2" not in out.stderr + out.stdout


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"username": "u"}, "has no password"),
        ({"password": "hunter2-secret"}, "has no username"),
        ({"username": "", "password": ""}, "has no username and no password"),
        (["u", "hunter2-secret"], "is JSON but not an object"),
    ],
)
def test_missing_credentials_are_named(moto, value, message):
    client, env = moto
    arn = secret(client, json.dumps(value))
    out = run(env, "--secret-arn", arn, "--host", "h", "--dbname", "d")
    assert out.returncode == 2
    assert f"secret {arn} {message}" in out.stderr
    assert "hunter2" not in out.stderr + out.stdout


def test_every_missing_or_bad_connection_setting_is_listed_at_once(moto):
    client, env = moto
    arn = secret(client, json.dumps({"username": "u", "password": "hunter2-secret"}))
    out = run(env, "--secret-arn", arn, "--port", "70000", "--sslrootcert", "/nonexistent/ca.pem")
    assert out.returncode == 2
    assert out.stdout == ""
    for problem in (
        "no host: give --host",
        "port `70000` is not a TCP port number",
        "no database name: give --dbname",
        "--sslrootcert /nonexistent/ca.pem is not a readable file",
    ):
        assert problem in out.stderr
    assert "hunter2" not in out.stderr
    out = run(env, "--secret-arn", arn, "--host", "h", "--dbname", "d")
    assert out.returncode == 2
    assert "sslmode verify-full needs a CA bundle: give --sslrootcert or PGSSLROOTCERT" in out.stderr


def test_no_credentials_and_bad_options(moto):
    client, env = moto
    arn = secret(client, json.dumps({"username": "u", "password": "pw"}))
    no_creds = {k: v for k, v in env.items() if not k.startswith("AWS_ACCESS") and not k.startswith("AWS_SECRET")}
    missing = {"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    out = run(no_creds, "--secret-arn", arn, "--host", "h", "--dbname", "d", extra_env=missing)
    assert out.returncode == 1
    assert f"no AWS credentials to read secret {arn}" in out.stderr
    out = run(env, "--host", "h")
    assert out.returncode == 2
    assert "--secret-arn" in out.stderr
    out = run(env, "--secret-arn", arn, "--sslmode", "verify-some")
    assert out.returncode == 2
    assert "invalid choice: 'verify-some'" in out.stderr
