"""A certificate authority and a server certificate for 127.0.0.1, made with the openssl command, for TLS tests.

Both carry the extensions strict X.509 verification asks for, which Python 3.13 turns on by default
(``ssl.VERIFY_X509_STRICT``): a CA without ``keyUsage`` or a leaf without ``authorityKeyIdentifier`` fails the
handshake with "CA cert does not include key usage extension". A team's own Redis CA needs the same (README.md).
"""

import shutil
import subprocess
from pathlib import Path

from tools.redis_server import Tls


def _openssl(*arguments: str, directory: Path) -> None:
    executable = shutil.which("openssl")
    if executable is None:
        raise RuntimeError("The TLS tests need the openssl command (Debian/Ubuntu: `sudo apt-get install openssl`).")
    subprocess.run([executable, *arguments], cwd=directory, check=True, capture_output=True, timeout=60)


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: (certificate, key)."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN={name}", "-keyout", key.name, "-out", cert.name,
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
        directory=directory,
    )  # fmt: skip
    return cert, key


def make_server_tls(directory: Path) -> Tls:
    """A CA and a certificate it signed for IP 127.0.0.1 (what the client checks the server's name against)."""
    ca_cert, ca_key = make_ca(directory, "test-ca")
    (directory / "server.cnf").write_text(
        "subjectAltName=IP:127.0.0.1\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr",
        directory=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", ca_cert.name, "-CAkey", ca_key.name, "-CAcreateserial",
        "-days", "2", "-extfile", "server.cnf", "-out", "server.crt",
        directory=directory,
    )  # fmt: skip
    return Tls(cert_file=directory / "server.crt", key_file=directory / "server.key", ca_file=ca_cert)
