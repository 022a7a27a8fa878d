"""The devstack's service-account signing key: kube-apiserver signs tokens with it, Vault verifies them.

Beside the private key go its public half (`.pub`, for JWT libraries) and a self-signed certificate
(`.crt`): Vault's Kubernetes auth `pem_keys` takes keys or certificates, and hvac sends only certificates.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sovereign_devstack.private_files import write_private


@dataclass(frozen=True)
class ServiceAccountKeyFiles:
    private_key: Path
    public_key: Path
    certificate: Path


def write_service_account_key(private_key_path: Path) -> ServiceAccountKeyFiles:
    """Create an RSA key (as kube-apiserver's --service-account-key-file), its public key and certificate.

    Existing files are kept, so a restarted API server keeps earlier tokens valid.
    """
    files = ServiceAccountKeyFiles(
        private_key=private_key_path,
        public_key=private_key_path.with_name(private_key_path.name + ".pub"),
        certificate=private_key_path.with_name(private_key_path.name + ".crt"),
    )
    if not private_key_path.exists():
        new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        write_private(
            private_key_path,
            new_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
    key = serialization.load_pem_private_key(private_key_path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    if not files.public_key.exists():
        files.public_key.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    if not files.certificate.exists():
        files.certificate.write_bytes(_self_signed_certificate(key).public_bytes(serialization.Encoding.PEM))
    return files


def _self_signed_certificate(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sovereign-devstack-service-account-signer")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
