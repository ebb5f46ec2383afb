"""TLS: `monument-ws run --certfile --keyfile` serves https:// and wss:// with a certificate
made by the test (a private CA and a server certificate for 127.0.0.1)."""

import datetime
import ipaddress
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from monument_ws.cli import cli
from monument_ws.client import Client
from monument_ws.protocol.errors import ConnectionLost
from tests.test_cluster import Server


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(directory: Path) -> dict[str, Path]:
    """A CA, and a server certificate it signed for 127.0.0.1 and localhost, as PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("monument_ws test CA"))
        .issuer_name(_name("monument_ws test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = {
        "ca": directory / "ca.pem",
        "cert": directory / "cert.pem",
        "key": directory / "key.pem",
    }
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


@pytest.fixture
def certificates(tmp_path: Path) -> dict[str, Path]:
    return make_certificates(tmp_path)


@pytest.fixture
async def tls_server(certificates: dict[str, Path]) -> Any:
    server = await Server(
        "--certfile", str(certificates["cert"]), "--keyfile", str(certificates["key"])
    ).start()
    yield server
    await server.stop()


async def test_wss_round_trip_with_a_generated_certificate(tls_server, certificates):
    """Over wss:// the client verifies the server against the test's CA and calls a handler;
    https:// serves the same app."""
    trusted = ssl.create_default_context(cafile=str(certificates["ca"]))
    url = f"wss://127.0.0.1:{tls_server.port}/ws"
    async with Client(url, ssl=trusted) as client:
        assert await client.call("echo", {"over": "tls"}) == {"over": "tls"}
        assert client.welcome["protocol"] == 1
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"https://127.0.0.1:{tls_server.port}/api/greeting", ssl=trusted) as response,
    ):
        assert response.status == 200
        assert await response.json() == {"greeting": "Hello from monument_ws!"}


async def test_wss_refuses_a_client_that_does_not_trust_the_ca(tls_server):
    """A client verifying against the system CAs refuses the private certificate: no connection."""
    url = f"wss://127.0.0.1:{tls_server.port}/ws"
    client = Client(url, reconnect=False)
    with pytest.raises(ConnectionLost):
        await client.connect(timeout=10)
    assert client.state == "closed"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--keyfile", "k.pem"], "--keyfile needs --certfile"),
        (["--certfile", "/nonexistent/cert.pem"], "cannot load the TLS certificate"),
    ],
)
def test_run_explains_a_bad_tls_setting(flags, message):
    """A key without a certificate, or a certificate that does not load: usage error, no traceback."""
    result = CliRunner().invoke(cli, ["run", *flags])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
