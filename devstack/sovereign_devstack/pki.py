"""The devstack's certificate authority: TLS for its Kubernetes API and its Vault, and the admin's client
certificate, as a cluster's PKI would issue them (k8s docs: /docs/setup/best-practices/certificates/).

`sovereign up` makes the CA once per state dir and keeps it, so a platform brought down and up again keeps
trusting what it trusted. Private keys are written with mode 0600. A real site uses its own PKI instead.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sovereign_devstack.private_files import write_private

CA_NAME = "sovereign-devstack-ca"
VALIDITY = datetime.timedelta(days=3650)
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class KeyPair:
    certificate: Path
    private_key: Path


@dataclass(frozen=True)
class CertificateAuthority:
    certificate: Path
    private_key: Path

    def pem(self) -> str:
        return self.certificate.read_text()

    def issue_server(self, directory: Path, name: str, hosts: tuple[str, ...] = LOOPBACK_NAMES) -> KeyPair:
        """A serving certificate for `hosts` (IP addresses and DNS names), kept if it exists already."""
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        return self._issue(
            directory,
            name,
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]),
            ExtendedKeyUsageOID.SERVER_AUTH,
            sans,
        )

    def issue_client(self, directory: Path, name: str, user: str, groups: tuple[str, ...] = ()) -> KeyPair:
        """A client certificate: kube-apiserver reads the user from CN and the groups from O
        (k8s docs: /docs/reference/access-authn-authz/authentication/#x509-client-certificates)."""
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, user)]
        attributes += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in groups]
        return self._issue(directory, name, x509.Name(attributes), ExtendedKeyUsageOID.CLIENT_AUTH, [])

    def _issue(
        self,
        directory: Path,
        name: str,
        subject: x509.Name,
        usage: x509.ObjectIdentifier,
        sans: list[x509.GeneralName],
    ) -> KeyPair:
        pair = KeyPair(directory / f"{name}.crt", directory / f"{name}.key")
        if pair.certificate.exists() and pair.private_key.exists():
            return pair
        ca_key = serialization.load_pem_private_key(self.private_key.read_bytes(), password=None)
        ca_cert = x509.load_pem_x509_certificate(self.certificate.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        certificate = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
        write_private(pair.private_key, _pem(key))
        pair.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return pair


def ensure_ca(directory: Path) -> CertificateAuthority:
    """The CA under `directory` (ca.crt, ca.key), made on first use and kept afterwards."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority(directory / "ca.crt", directory / "ca.key")
    if ca.certificate.exists() and ca.private_key.exists():
        return ca
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private(ca.private_key, _pem(key))
    ca.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return ca


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
