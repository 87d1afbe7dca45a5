"""The plugin's clients over HTTPS: the service's certificate checked against `tls_ca`, and the CA bundle
loaded once for all clients (a triggerer builds one client per trigger, on its event loop)."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address

import pytest
from conftest import free_port

from airfleet_airflow.client import AirfleetClient, AirfleetUnreachable, AsyncAirfleetClient
from airfleet_airflow.config import load_config


def _authority(tmp_path, name):
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files: the CA bundle is the certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / f"{name}.pem", tmp_path / f"{name}-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(key_file, 0o600)
    return str(cert_file), str(key_file)


@pytest.fixture
def https_service(tmp_path):
    """An HTTPS server on loopback answering GET /v1/workloads/<id> the way the service does."""
    cert, key = _authority(tmp_path, "service")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = json.dumps({"id": self.path.rsplit("/", 1)[-1], "state": "succeeded"}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()


def config(url, tls_ca):
    return load_config({"url": url, "token": "aft_x", "tls_ca": tls_ca}.get)


def test_the_service_certificate_is_checked_against_tls_ca(https_service, tmp_path):
    url, ca = https_service
    client = AirfleetClient(config(url, ca))
    try:
        assert client.workload("w1")["state"] == "succeeded"
    finally:
        client.close()
    other_ca, _ = _authority(tmp_path, "other")
    refused = AirfleetClient(config(url, other_ca))
    try:
        with pytest.raises(AirfleetUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
            refused.workload("w1")
    finally:
        refused.close()


def test_many_trigger_clients_load_the_ca_bundle_once(https_service, monkeypatch):
    url, ca = https_service
    loads = []
    original = ssl.SSLContext.load_verify_locations

    def counting(self, *args, **kwargs):
        loads.append(kwargs.get("cafile") or (args[0] if args else None))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counting)

    async def many():
        clients = [AsyncAirfleetClient(config(url, ca)) for _ in range(50)]
        try:
            return [w["state"] for w in await asyncio.gather(*(c.workload(f"w{i}") for i, c in enumerate(clients)))]
        finally:
            await asyncio.gather(*(c.close() for c in clients))

    assert asyncio.run(many()) == ["succeeded"] * 50
    assert loads.count(ca) <= 1  # once, or not at all when an earlier test of this process built it


def test_a_rotated_ca_bundle_is_loaded_again(https_service, tmp_path):
    url, ca = https_service
    client = AirfleetClient(config(url, ca))
    client.close()
    other_ca, _ = _authority(tmp_path, "rotated")
    with open(other_ca, "rb") as src, open(ca, "wb") as dst:  # the bundle rewritten in place: a CA rotation
        dst.write(src.read())
    os.utime(ca, ns=(os.stat(ca).st_atime_ns, os.stat(ca).st_mtime_ns + 1_000_000_000))
    after = AirfleetClient(config(url, ca))
    try:
        with pytest.raises(AirfleetUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
            after.workload("w1")  # the server's certificate is not signed by the new CA: the new one is used
    finally:
        after.close()
