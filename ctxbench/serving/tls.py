"""A self-signed certificate for 127.0.0.1, generated per run, for servers and fronts speaking TLS (HTTP/2 by ALPN)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HTTP1 = ("http/1.1",)  # what a health check over urllib offers
VALID_FOR = dt.timedelta(days=1)  # a run's certificate: never reused, never trusted outside the run


@dataclass(frozen=True, slots=True)
class Certificate:
    cert: Path  # PEM
    key: Path  # PEM, PKCS#8 unencrypted (granian takes PKCS#8 only)

    def client_context(self, protocols: tuple[str, ...] = ("h2", "http/1.1")) -> ssl.SSLContext:
        """A client context that trusts this certificate alone, offering `protocols` by ALPN (an HTTP/1.1-only
        client such as urllib must not offer h2: the server would pick it)."""
        context = ssl.create_default_context(cafile=str(self.cert))
        context.set_alpn_protocols(list(protocols))
        return context


def generate(directory: Path, host: str) -> Certificate:
    """Write a fresh key and a self-signed certificate for `host` (an IP address) into `directory`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    paths = Certificate(directory / "cert.pem", directory / "key.pem")
    paths.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths
