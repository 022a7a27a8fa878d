"""Authentication: who makes a request, as kube-apiserver's authenticators decide it.

# k8s docs: /docs/reference/access-authn-authz/authentication/#authentication-strategies
- X509 client certificates verified against `--client-ca-file`: CN is the user, each O a group
  (# k8s docs: .../authentication/#x509-client-certificates).
- Bearer tokens: a line of the static token file `--token-auth-file` (`token,user,uid,"group1,group2"`,
  # k8s docs: .../authentication/#static-token-file), or a ServiceAccount token this server issued
  (# k8s docs: .../authentication/#service-account-tokens): signed by its key, its issuer, an API audience,
  not expired, its ServiceAccount (and bound object) still there with the same uid.
- A bearer token that none of them accepts is 401: a bad credential is never anonymous.
- Anonymous requests are allowed for the health paths only, as kube 1.32's AuthenticationConfiguration
  `anonymous: {enabled: true, conditions: [{path: /livez}, {path: /readyz}, {path: /healthz}]}` does
  (# k8s docs: .../authentication/#anonymous-authenticator-configuration); anywhere else they are 401.
Every authenticated user is also in `system:authenticated`.
"""

from __future__ import annotations

import csv
import ssl
from pathlib import Path
from typing import Any

from sovereign_devstack.kube import errors
from sovereign_devstack.kube.service_account_tokens import TokenIssuer
from sovereign_devstack.kube.store import Store

AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS_USER = {"username": "system:anonymous", "groups": [UNAUTHENTICATED]}
ANONYMOUS_PATHS = ("/healthz", "/livez", "/readyz")


def unauthorized() -> errors.StatusError:
    """kube-apiserver's answer to a request it cannot authenticate (responsewriters.Unauthorized)."""
    return errors.StatusError(401, "Unauthorized", "Unauthorized", {})


def read_token_file(path: Path) -> dict[str, dict[str, Any]]:
    """`--token-auth-file`: CSV lines `token,user,uid[,"group1,group2"]`, as kube-apiserver reads them."""
    users: dict[str, dict[str, Any]] = {}
    with path.open(newline="") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 3:
                raise ValueError(f"{path}:{number}: want token,user,uid[,groups], got {len(row)} fields")
            groups = [g.strip() for g in row[3].split(",") if g.strip()] if len(row) > 3 else []
            users[row[0]] = {"username": row[1], "uid": row[2], "groups": groups}
    return users


def _with_authenticated(user: dict[str, Any]) -> dict[str, Any]:
    groups = list(user.get("groups") or [])
    if AUTHENTICATED not in groups:
        groups.append(AUTHENTICATED)
    return {**user, "groups": groups}


def certificate_user(peer: dict[str, Any] | None) -> dict[str, Any] | None:
    """The user of a verified client certificate (`ssl.SSLSocket.getpeercert()`): CN and the O's."""
    if not peer:
        return None
    names: list[str] = []
    organizations: list[str] = []
    for rdn in peer.get("subject") or ():
        for key, value in rdn:
            if key == "commonName":
                names.append(value)
            elif key == "organizationName":
                organizations.append(value)
    if not names or not names[0]:
        return None
    return {"username": names[0], "groups": organizations}


class Authenticator:
    def __init__(self, tokens: TokenIssuer, store: Store, static_tokens: dict[str, dict[str, Any]]) -> None:
        self.tokens = tokens
        self.store = store
        self.static_tokens = static_tokens

    def authenticate(self, authorization: str, ssl_object: ssl.SSLObject | None, path: str) -> dict[str, Any]:
        """The request's user; raises the 401 Status for bad credentials and for anonymous requests outside
        the health paths. As kube's union of authenticators, a verified client certificate comes first."""
        user = certificate_user(ssl_object.getpeercert() if ssl_object is not None else None)
        if user is not None:
            return _with_authenticated(user)
        if authorization:
            scheme, _, token = authorization.strip().partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise unauthorized()
            return _with_authenticated(self._token_user(token))
        if path in ANONYMOUS_PATHS:  # the conditions match whole paths: /readyz/etcd is not among them
            return dict(ANONYMOUS_USER)
        raise unauthorized()

    def _token_user(self, token: str) -> dict[str, Any]:
        static = self.static_tokens.get(token)
        if static is not None:
            return dict(static)
        if token.count(".") == 2:
            try:
                claims, _ = self.tokens.verify(token, self.store, None)
            except ValueError:
                raise unauthorized() from None
            return self.tokens.user_info(claims)
        raise unauthorized()
