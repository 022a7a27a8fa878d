"""The Kubernetes TokenReview call the Kubernetes auth method makes when no pem_keys are configured.

Vault docs: /vault/docs/auth/kubernetes#how-to-work-with-short-lived-kubernetes-tokens and
/vault/api-docs/auth/kubernetes#token_reviewer_jwt ("if not set, the JWT submitted in the login payload
will be used to access the Kubernetes TokenReview API").
"""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp

from sovereign_devstack.vault.common import VaultError


async def review_token(config: dict[str, Any], token: str, audience: str = "") -> dict[str, Any]:
    """POST a TokenReview and return its `status`; transport failures are 500s as in Vault."""
    url = config["kubernetes_host"].rstrip("/") + "/apis/authentication.k8s.io/v1/tokenreviews"
    bearer = config.get("token_reviewer_jwt") or token
    spec: dict[str, Any] = {"token": token}
    if audience:
        spec["audiences"] = [audience]
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
    ssl_context: ssl.SSLContext | bool = True
    if url.startswith("https://") and config.get("kubernetes_ca_cert"):
        ssl_context = ssl.create_default_context(cadata=config["kubernetes_ca_cert"])
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.post(
                url, json=body, headers={"Authorization": f"Bearer {bearer}"}, ssl=ssl_context
            ) as response,
        ):
            if response.status in (401, 403):
                raise VaultError(403, "permission denied")
            if response.status >= 300:
                raise VaultError(500, f"lookup failed: TokenReview answered HTTP {response.status}")
            payload = await response.json(content_type=None)
    except aiohttp.ClientError as exc:
        raise VaultError(500, f"lookup failed: {type(exc).__name__}") from None
    return dict(payload.get("status") or {})
