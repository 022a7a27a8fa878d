"""The ACL policy store behind sys/policies/acl and the legacy sys/policy endpoints.

Vault docs: /vault/api-docs/system/policies and /vault/api-docs/system/policy
"""

from __future__ import annotations

from sovereign_devstack.vault.acl import ACL, DEFAULT_POLICY_TEXT, Policy, parse_policy
from sovereign_devstack.vault.common import invalid_request


class PolicyStore:
    def __init__(self) -> None:
        # `root` has no rules: the ACL treats its name as "everything allowed".
        self._policies: dict[str, Policy] = {
            "root": Policy(name="root", text=""),
            "default": parse_policy("default", DEFAULT_POLICY_TEXT),
        }

    @staticmethod
    def normalise(name: str) -> str:
        # Vault docs: /vault/api-docs/system/policies ("policy names are ... lowercased")
        return name.strip().lower()

    def names(self) -> list[str]:
        return sorted(self._policies)

    def get(self, name: str) -> Policy | None:
        return self._policies.get(self.normalise(name))

    def exists(self, name: str) -> bool:
        return self.normalise(name) in self._policies

    def put(self, name: str, text: str | None) -> None:
        name = self.normalise(name)
        if not name:
            raise invalid_request("policy name must be provided in the URL")
        if name == "root":
            # Vault docs: /vault/docs/concepts/policies#root-policy ("can not be modified or removed")
            raise invalid_request('cannot update "root" policy')
        if text is None:
            raise invalid_request("'policy' parameter not supplied or empty")
        self._policies[name] = parse_policy(name, text)

    def delete(self, name: str) -> None:
        name = self.normalise(name)
        if name in ("root", "default"):
            # Vault docs: /vault/docs/concepts/policies#built-in-policies (default cannot be removed)
            raise invalid_request(f'cannot delete "{name}" policy')
        self._policies.pop(name, None)

    def acl_for(self, names: list[str]) -> ACL:
        """The ACL of a token; policies that no longer exist simply grant nothing, as in Vault."""
        return ACL(policy for name in names if (policy := self._policies.get(name)) is not None)
