"""Kubernetes auth on the dev Vault through hvac, with ServiceAccount JWTs minted here (no cluster needed)."""

from __future__ import annotations

import datetime
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import hvac
import hvac.exceptions
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

ISSUER = "https://kubernetes.default.svc.cluster.local"


def self_signed_certificate(key: rsa.RSAPrivateKey) -> str:
    """hvac's configure() only accepts certificates for pem_keys; Vault uses the certificate's public key."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sa-signer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def service_account_jwt(
    key,
    namespace: str,
    name: str,
    *,
    expires_in: int = 600,
    audience: str = "vault",
    algorithm: str = "RS256",
    legacy: bool = False,
) -> str:
    """A token shaped like the kubelet's projected ServiceAccount tokens (or the legacy secret tokens)."""
    now = int(time.time())
    uid = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{namespace}/{name}"))
    if legacy:
        claims = {
            "iss": "kubernetes/serviceaccount",
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "kubernetes.io/serviceaccount/namespace": namespace,
            "kubernetes.io/serviceaccount/service-account.name": name,
            "kubernetes.io/serviceaccount/service-account.uid": uid,
            "kubernetes.io/serviceaccount/secret.name": f"{name}-token-abcde",
        }
    else:
        claims = {
            "iss": ISSUER,
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "aud": [audience],
            "iat": now,
            "nbf": now,
            "exp": now + expires_in,
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
        }
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": "test"})


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def k8s(vault_server, signing_key) -> tuple[hvac.Client, str, str]:
    """A kubernetes auth mount verifying with pem_keys, a policy, and a role bound to nation-a/inference."""
    root = hvac.Client(url=vault_server.url, token=vault_server.root_token)
    mount = f"k8s-{uuid.uuid4().hex[:6]}"
    root.sys.enable_auth_method(method_type="kubernetes", path=mount)
    root.auth.kubernetes.configure(
        kubernetes_host="https://127.0.0.1:1",
        pem_keys=[self_signed_certificate(signing_key)],
        mount_point=mount,
    )
    policy = f"infer-{uuid.uuid4().hex[:6]}"
    root.sys.create_or_update_acl_policy(policy, 'path "secret/data/k8s-test/*" { capabilities = ["read"] }')
    root.auth.kubernetes.create_role(
        name="inference",
        bound_service_account_names=["inference"],
        bound_service_account_namespaces=["nation-a"],
        policies=[policy],
        ttl="20m",
        mount_point=mount,
    )
    return root, mount, policy


def login(vault_server, mount: str, role: str, token: str) -> dict:
    client = hvac.Client(url=vault_server.url)
    return client.auth.kubernetes.login(role=role, jwt=token, mount_point=mount)


def test_bound_service_account_logs_in_with_role_policies(vault_server, signing_key, k8s) -> None:
    root, mount, policy = k8s
    auth = login(vault_server, mount, "inference", service_account_jwt(signing_key, "nation-a", "inference"))[
        "auth"
    ]
    assert auth["client_token"].startswith("hvs.")
    assert auth["policies"] == sorted(["default", policy])
    assert auth["lease_duration"] == 1200
    assert auth["metadata"]["role"] == "inference"
    assert auth["metadata"]["service_account_name"] == "inference"
    assert auth["metadata"]["service_account_namespace"] == "nation-a"
    assert auth["metadata"]["service_account_uid"]
    root.secrets.kv.v2.create_or_update_secret(path="k8s-test/model", secret={"k": "v"})
    app = hvac.Client(url=vault_server.url, token=auth["client_token"])
    assert app.secrets.kv.v2.read_secret_version(path="k8s-test/model", raise_on_deleted_version=True)[
        "data"
    ]["data"]
    with pytest.raises(hvac.exceptions.Forbidden):
        app.secrets.kv.v2.create_or_update_secret(path="k8s-test/model", secret={"k": "x"})


@pytest.mark.parametrize(
    ("namespace", "name", "kwargs"),
    [
        ("nation-a", "someone-else", {}),
        ("nation-b", "inference", {}),
        ("nation-a", "inference", {"expires_in": -3600}),
    ],
    ids=["unbound-service-account", "wrong-namespace", "expired-token"],
)
def test_login_is_forbidden(vault_server, signing_key, k8s, namespace, name, kwargs) -> None:
    _, mount, _ = k8s
    with pytest.raises(hvac.exceptions.Forbidden):
        login(vault_server, mount, "inference", service_account_jwt(signing_key, namespace, name, **kwargs))


def test_token_signed_by_another_key_is_forbidden(vault_server, k8s) -> None:
    _, mount, _ = k8s
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(hvac.exceptions.Forbidden):
        login(vault_server, mount, "inference", service_account_jwt(impostor, "nation-a", "inference"))


def test_unknown_role_and_missing_jwt_are_400(vault_server, signing_key, k8s) -> None:
    _, mount, _ = k8s
    with pytest.raises(hvac.exceptions.InvalidRequest, match='invalid role name "nope"'):
        login(vault_server, mount, "nope", service_account_jwt(signing_key, "nation-a", "inference"))
    with pytest.raises(hvac.exceptions.InvalidRequest, match="missing jwt"):
        login(vault_server, mount, "inference", "")


def test_wildcard_bindings_audience_and_legacy_tokens(vault_server, signing_key, k8s) -> None:
    root, mount, _ = k8s
    root.auth.kubernetes.create_role(
        name="any-in-nations",
        bound_service_account_names=["*"],
        bound_service_account_namespaces=["nation-*"],
        audience="vault",
        mount_point=mount,
    )
    ok = login(vault_server, mount, "any-in-nations", service_account_jwt(signing_key, "nation-c", "whoever"))
    assert ok["auth"]["metadata"]["service_account_namespace"] == "nation-c"
    with pytest.raises(hvac.exceptions.Forbidden):
        login(
            vault_server, mount, "any-in-nations", service_account_jwt(signing_key, "kube-system", "whoever")
        )
    with pytest.raises(hvac.exceptions.Forbidden):
        login(
            vault_server,
            mount,
            "any-in-nations",
            service_account_jwt(signing_key, "nation-c", "whoever", audience="something-else"),
        )
    legacy = login(
        vault_server,
        mount,
        "inference",
        service_account_jwt(signing_key, "nation-a", "inference", legacy=True),
    )
    assert legacy["auth"]["metadata"]["service_account_secret_name"] == "inference-token-abcde"


def test_role_crud_and_list(k8s) -> None:
    root, mount, policy = k8s
    root.auth.kubernetes.create_role(
        name="temp",
        bound_service_account_names="a,b",
        bound_service_account_namespaces=["ns"],
        policies=[policy],
        mount_point=mount,
    )
    role = root.auth.kubernetes.read_role(name="temp", mount_point=mount)
    assert role["bound_service_account_names"] == ["a", "b"]
    assert role["token_policies"] == [policy]
    assert "temp" in root.auth.kubernetes.list_roles(mount_point=mount)["keys"]
    root.auth.kubernetes.delete_role(name="temp", mount_point=mount)
    assert "temp" not in root.auth.kubernetes.list_roles(mount_point=mount)["keys"]
    with pytest.raises(hvac.exceptions.InvalidRequest, match="can not be empty"):
        root.adapter.post(f"/v1/auth/{mount}/role/bad", json={"bound_service_account_names": ["x"]})


def test_config_accepts_raw_public_keys_and_es256(vault_server) -> None:
    root = hvac.Client(url=vault_server.url, token=vault_server.root_token)
    mount = f"k8s-{uuid.uuid4().hex[:6]}"
    root.sys.enable_auth_method(method_type="kubernetes", path=mount)
    key = ec.generate_private_key(ec.SECP256R1())
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    # hvac only passes certificates, so send a bare public key as the API allows.
    root.adapter.post(
        f"/v1/auth/{mount}/config",
        json={
            "kubernetes_host": "https://k8s",
            "pem_keys": [public_pem],
            "issuer": ISSUER,
            "disable_iss_validation": False,
        },
    )
    config = root.auth.kubernetes.read_config(mount_point=mount)
    assert config["kubernetes_host"] == "https://k8s" and config["issuer"] == ISSUER
    root.auth.kubernetes.create_role(
        name="r",
        bound_service_account_names=["sa"],
        bound_service_account_namespaces=["ns"],
        mount_point=mount,
    )
    assert login(vault_server, mount, "r", service_account_jwt(key, "ns", "sa", algorithm="ES256"))["auth"]
    # Issuer validation is on here, and legacy tokens carry another issuer.
    with pytest.raises(hvac.exceptions.Forbidden):
        login(vault_server, mount, "r", service_account_jwt(key, "ns", "sa", algorithm="ES256", legacy=True))


class _TokenReviewHandler(BaseHTTPRequestHandler):
    """A stand-in for the Kubernetes TokenReview API: authenticates tokens listed in `known`."""

    known: dict[str, str] = {}

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.path == "/apis/authentication.k8s.io/v1/tokenreviews"
        username = self.known.get(body["spec"]["token"])
        status = (
            {"authenticated": True, "user": {"username": username, "uid": "uid-1"}}
            if username
            else {"authenticated": False, "error": "invalid bearer token"}
        )
        payload = json.dumps(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status}
        ).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def token_review_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenReviewHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_without_pem_keys_login_asks_the_token_review_api(
    vault_server, signing_key, token_review_api
) -> None:
    root = hvac.Client(url=vault_server.url, token=vault_server.root_token)
    mount = f"k8s-{uuid.uuid4().hex[:6]}"
    root.sys.enable_auth_method(method_type="kubernetes", path=mount)
    root.auth.kubernetes.configure(kubernetes_host=token_review_api, mount_point=mount)
    root.auth.kubernetes.create_role(
        name="r",
        bound_service_account_names=["inference"],
        bound_service_account_namespaces=["nation-a"],
        mount_point=mount,
    )
    good = service_account_jwt(signing_key, "nation-a", "inference")
    _TokenReviewHandler.known = {good: "system:serviceaccount:nation-a:inference"}
    auth = login(vault_server, mount, "r", good)["auth"]
    assert auth["metadata"]["service_account_uid"] == "uid-1"
    revoked = service_account_jwt(signing_key, "nation-a", "inference", expires_in=3000)
    with pytest.raises(hvac.exceptions.Forbidden):
        login(vault_server, mount, "r", revoked)  # well-formed, but the API server does not vouch for it


def test_role_max_ttl_caps_the_login_token(vault_server, signing_key, k8s) -> None:
    root, mount, policy = k8s
    root.auth.kubernetes.create_role(
        name="capped",
        bound_service_account_names=["inference"],
        bound_service_account_namespaces=["nation-a"],
        policies=[policy],
        ttl="2h",
        max_ttl="30m",
        mount_point=mount,
    )
    sa_token = service_account_jwt(signing_key, "nation-a", "inference")
    assert login(vault_server, mount, "capped", sa_token)["auth"]["lease_duration"] == 1800
