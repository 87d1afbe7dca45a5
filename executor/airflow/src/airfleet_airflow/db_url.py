"""``airfleet-airflow-db-url``: Airflow's metadata database URL, built from a Secrets Manager secret.

Airflow runs it as ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD`` (and, with ``--async``, as
``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC_CMD``) every time a component starts, so the password lives only
in the secret: ``airfleet database create-role --for airflow`` writes it there (and a new one to rotate),
and restarted components read the new value. The data stack's ``airflow_environment`` output gives the
exact command (docs/deployment-secrets.md, "Airflow's metadata database").

The secret is JSON with ``username`` and ``password``, and optionally ``host``, ``port`` and ``dbname`` (the
layout of RDS's own secrets). Host, port and database name come from the options, else the secret, else
``PGHOST``, ``PGPORT`` and ``PGDATABASE``. TLS is ``sslmode=verify-full`` against ``--sslrootcert`` (else
``PGSSLROOTCERT``) by default.

Only the URL goes to stdout, and only on success: Airflow puts a failing command's stdout into its error
message. Every problem goes to stderr naming the secret and what is missing, with exit code 2 for bad
input and 1 when Secrets Manager cannot be read. Nothing here logs, and no message carries the password.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Mapping, NoReturn, Sequence
from urllib.parse import quote, urlencode

PROG = "airfleet-airflow-db-url"
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# psycopg2 is Airflow's documented driver for the sync engine. The async engine gets psycopg 3 (libpq too,
# so sslmode and sslrootcert mean the same): Airflow would otherwise derive postgresql+asyncpg from the sync
# URL (airflow.settings._get_async_conn_uri_from_sync), and SQLAlchemy hands asyncpg the URL's query as
# keyword arguments, which has no `sslmode` or `sslrootcert`.
SYNC_SCHEME = "postgresql+psycopg2"
ASYNC_SCHEME = "postgresql+psycopg"
_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:([a-z0-9-]+):\d{12}:secret:.+$")


class DbUrlError(Exception):
    """A problem the user fixes; ``code`` is the exit status (2: bad input, 1: Secrets Manager)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Print Airflow's metadata database URL from the airflow role's Secrets Manager secret.",
    )
    p.add_argument("--secret-arn", required=True, help="ARN (or name) of the secret airfleet/<env>/database-airflow")
    p.add_argument("--host", help="database host (default: the secret's host, else PGHOST)")
    p.add_argument("--port", help="database port (default: the secret's port, else PGPORT, else 5432)")
    p.add_argument("--dbname", help="database name (default: the secret's dbname, else PGDATABASE)")
    p.add_argument("--sslmode", choices=SSLMODES, default="verify-full", help="libpq sslmode (default verify-full)")
    p.add_argument("--sslrootcert", help="CA bundle that verifies the server (default: PGSSLROOTCERT)")
    p.add_argument("--async", dest="async_", action="store_true", help=f"the async engine's URL ({ASYNC_SCHEME})")
    return p


def read_secret(secret_id: str) -> str:
    """The secret's current string value; DbUrlError naming the secret and the cause otherwise."""
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
    except ImportError:
        raise DbUrlError(f"{PROG}: boto3 is not installed; install airfleet-airflow[aws]", 1) from None
    # An ARN names the secret's region: a host with no AWS region configured (or another one) still reads it.
    m = _ARN.match(secret_id)
    region = (m.group(1) if m else None) or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    try:
        client = boto3.session.Session().client("secretsmanager", **({"region_name": region} if region else {}))
        out = client.get_secret_value(SecretId=secret_id)
    except NoCredentialsError:
        raise DbUrlError(f"{PROG}: no AWS credentials to read secret {secret_id}", 1) from None
    except ClientError as e:
        err = e.response.get("Error", {})
        code, message = err.get("Code", "?"), err.get("Message", "")
        if code == "ResourceNotFoundException" and "value" in message.lower():
            raise DbUrlError(
                f"{PROG}: secret {secret_id} has no value yet: run `airfleet database create-role --for airflow "
                f"--secret-arn {secret_id}` first (docs/deployment-secrets.md)",
                1,
            ) from None
        if code == "ResourceNotFoundException":
            raise DbUrlError(f"{PROG}: secret {secret_id} does not exist ({message})", 1) from None
        raise DbUrlError(f"{PROG}: cannot read secret {secret_id}: {code}: {message}", 1) from None
    except BotoCoreError as e:
        raise DbUrlError(f"{PROG}: cannot read secret {secret_id}: {e}", 1) from None
    value = out.get("SecretString")
    if not value:
        raise DbUrlError(f"{PROG}: secret {secret_id} holds no string value (binary secrets are not read)")
    return value


def _parse_secret(secret_id: str, raw: str) -> dict[str, object]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        # Only the position: the value may be the password itself.
        raise DbUrlError(
            f'{PROG}: secret {secret_id} is not JSON ({e.msg} at {e.pos}); it must be {{"username", "password"}}'
        ) from None
    if not isinstance(data, dict):
        raise DbUrlError(f'{PROG}: secret {secret_id} is JSON but not an object; it must be {{"username", "password"}}')
    missing = [k for k in ("username", "password") if not isinstance(data.get(k), str) or not data[k]]
    if missing:
        raise DbUrlError(f"{PROG}: secret {secret_id} has no {' and no '.join(missing)} (a non-empty string each)")
    return data


def build_url(
    secret_id: str,
    raw_secret: str,
    *,
    host: str | None = None,
    port: str | None = None,
    dbname: str | None = None,
    sslmode: str = "verify-full",
    sslrootcert: str | None = None,
    async_: bool = False,
    env: Mapping[str, str] = os.environ,
) -> str:
    """The SQLAlchemy URL from the secret's value and the options (see the module's docstring)."""
    data = _parse_secret(secret_id, raw_secret)

    def pick(option: str | None, key: str, var: str) -> str | None:
        for value in (option, data.get(key), env.get(var)):
            if value is not None and str(value).strip():
                return str(value).strip()
        return None

    problems: list[str] = []
    host = pick(host, "host", "PGHOST")
    if not host:
        problems.append("no host: give --host, a `host` in the secret, or PGHOST")
    port = pick(port, "port", "PGPORT") or "5432"
    if not port.isdigit() or not 0 < int(port) < 65536:
        problems.append(f"port `{port}` is not a TCP port number")
    dbname = pick(dbname, "dbname", "PGDATABASE")
    if not dbname:
        problems.append("no database name: give --dbname, a `dbname` in the secret, or PGDATABASE")
    query = {"sslmode": sslmode}
    if sslmode in ("verify-ca", "verify-full"):
        sslrootcert = sslrootcert or env.get("PGSSLROOTCERT") or None
        if not sslrootcert:
            problems.append(f"sslmode {sslmode} needs a CA bundle: give --sslrootcert or PGSSLROOTCERT")
        elif not os.path.isfile(sslrootcert) or not os.access(sslrootcert, os.R_OK):
            problems.append(f"--sslrootcert {sslrootcert} is not a readable file; give the CA bundle (PEM) of the server")
        else:
            query["sslrootcert"] = sslrootcert
    if problems:
        raise DbUrlError(f"{PROG} (secret {secret_id}): " + "; ".join(problems))

    user = quote(str(data["username"]), safe="")
    password = quote(str(data["password"]), safe="")
    netloc_host = f"[{host}]" if ":" in host else host  # type: ignore[operator]
    scheme = ASYNC_SCHEME if async_ else SYNC_SCHEME
    return (
        f"{scheme}://{user}:{password}@{netloc_host}:{port}/{quote(dbname, safe='')}"  # type: ignore[arg-type]
        f"?{urlencode(query, safe='/')}"
    )


def _fail(err: DbUrlError) -> NoReturn:
    print(str(err), file=sys.stderr)
    sys.exit(err.code)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        raw = read_secret(args.secret_arn)
        url = build_url(
            args.secret_arn,
            raw,
            host=args.host,
            port=args.port,
            dbname=args.dbname,
            sslmode=args.sslmode,
            sslrootcert=args.sslrootcert,
            async_=args.async_,
        )
    except DbUrlError as e:
        _fail(e)
    # No newline: Airflow takes the command's stdout as the value, as it is.
    sys.stdout.write(url)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
