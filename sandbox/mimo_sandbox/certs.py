"""The sandbox's PKI: a throwaway CA, the API server's serving cert, client certs and SA signing keys.

A real API server with RBAC needs real identities: the admin (group `system:masters`), the controller
manager and scheduler under the user names the bootstrap RBAC policy grants permissions to, and a key
pair to sign and verify ServiceAccount tokens. Everything is generated fresh per sandbox (ECDSA P-256:
fast to generate, accepted by every component) and lives only in the sandbox's state directory.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Long enough for any test session or demo, short enough that a leaked sandbox key is worthless.
_VALIDITY = datetime.timedelta(days=7)


# The Service (an ExternalName of localhost) in front of an aggregated API server run on the host.
EXTENSION_SERVICE_NAMESPACE = "default"
EXTENSION_SERVICE_NAME = "extension-apiserver"


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class ClientIdentity:
    """Who a client certificate says it is: the user name (CN) and groups (O)."""

    user: str
    groups: Sequence[str] = ()


@dataclass(frozen=True)
class Pki:
    ca: KeyPair
    apiserver: KeyPair
    extension_server: KeyPair  # for aggregated API servers run on the host (localhost), see below
    service_account_key: Path  # private key: signs tokens (apiserver) and controller-manager tokens
    service_account_pub: Path  # public key: verifies tokens
    clients: dict[str, KeyPair]


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """Signatures for every certificate; signing certificates and CRLs only for the CA."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _save(directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> KeyPair:
    """`<name>.crt` and `<name>.key` in `directory`."""
    pair = KeyPair(directory / f"{name}.crt", directory / f"{name}.key")
    _write_cert(pair.cert, cert)
    _write_key(pair.key, key)
    return pair


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _now() -> datetime.datetime:
    # Backdated a little so a certificate is valid even if a component's clock reads it a moment early.
    return datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)


def _issue(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    usages: Sequence[x509.ObjectIdentifier],
    dns_names: Sequence[str] = (),
    ips: Sequence[str] = (),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now())
        .not_valid_after(_now() + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(ca=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    )
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def generate_pki(
    directory: Path,
    *,
    service_ip: str,
    clients: dict[str, ClientIdentity],
    cluster_domain: str = "cluster.local",
) -> Pki:
    """Write a complete PKI for one sandbox into `directory` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)

    ca_key = _new_key()
    ca_name = _name("mimo-operator-sandbox-ca")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now())
        .not_valid_after(_now() + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            _key_usage(ca=True),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca = _save(directory, "ca", ca_cert, ca_key)

    # In-cluster clients reach the API server as `kubernetes.default.svc` / the first service IP; the
    # names are included so the cert stays valid for anything the operator might run in-cluster later.
    serving_key = _new_key()
    serving_cert = _issue(
        _name("kube-apiserver"),
        serving_key,
        ca_cert,
        ca_key,
        usages=[ExtendedKeyUsageOID.SERVER_AUTH],
        dns_names=[
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            f"kubernetes.default.svc.{cluster_domain}",
        ],
        ips=["127.0.0.1", service_ip],
    )
    apiserver = _save(directory, "apiserver", serving_cert, serving_key)

    # An aggregated API server that a test runs on the host sits behind an APIService whose Service is
    # an ExternalName of localhost. The aggregator checks its certificate against the sandbox CA, for
    # the Service's name (<service>.<namespace>.svc), so that Service has one fixed name.
    extension_key = _new_key()
    extension_cert = _issue(
        _name("sandbox-extension-apiserver"),
        extension_key,
        ca_cert,
        ca_key,
        usages=[ExtendedKeyUsageOID.SERVER_AUTH],
        dns_names=["localhost", f"{EXTENSION_SERVICE_NAME}.{EXTENSION_SERVICE_NAMESPACE}.svc"],
        ips=["127.0.0.1"],
    )
    extension_server = _save(directory, "extension-server", extension_cert, extension_key)

    sa_key = _new_key()
    sa_key_path = directory / "sa.key"
    sa_pub_path = directory / "sa.pub"
    _write_key(sa_key_path, sa_key)
    sa_pub_path.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )

    issued: dict[str, KeyPair] = {}
    for name, identity in clients.items():
        key = _new_key()
        cert = _issue(
            _name(identity.user, identity.groups),
            key,
            ca_cert,
            ca_key,
            usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
        )
        issued[name] = _save(directory, name, cert, key)

    return Pki(
        ca=ca,
        apiserver=apiserver,
        extension_server=extension_server,
        service_account_key=sa_key_path,
        service_account_pub=sa_pub_path,
        clients=issued,
    )
