"""What a request may ask of the gateway (`Operation`) and where it asks it: one table of routes, served under
`/v1` to the nation's users and under `/federation/v1` to peer nations' gateways (`_router.py` mounts it)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

PUBLIC_PREFIX = "/v1"
FEDERATION_PREFIX = "/federation/v1"


class Operation(StrEnum):
    """One thing a request asks; a model's operations (chat, completion, embed) are also how its calls,
    bodies, limits, spans and forwarded routes differ."""

    MODELS = "models"
    CHAT = "chat"
    COMPLETION = "completion"
    EMBED = "embed"
    SEARCH = "search"

    @property
    def path(self) -> str:
        """The operation's path after the prefix (the route a federation assertion is signed for)."""
        return PATHS[self]

    @property
    def task(self) -> str:
        """The model task (`GatewayModel.task`) the operation needs."""
        return "embed" if self is Operation.EMBED else "generate"


PATHS = {  # by operation, so that a plain string of its value finds its path too
    Operation.MODELS: "models",
    Operation.CHAT: "chat/completions",
    Operation.COMPLETION: "completions",
    Operation.EMBED: "embeddings",
    Operation.SEARCH: "sovereign/search",
}


@dataclass(frozen=True)
class Route:
    """An HTTP method and path, the operation it serves and whether it is a federation route."""

    method: str
    operation: Operation
    federated: bool

    @property
    def path(self) -> str:
        return f"{FEDERATION_PREFIX if self.federated else PUBLIC_PREFIX}/{self.operation.path}"


_ASKED_BY_PEERS = (Operation.CHAT, Operation.COMPLETION, Operation.EMBED, Operation.SEARCH)

ROUTES: tuple[Route, ...] = (
    Route("GET", Operation.MODELS, federated=False),
    *(Route("POST", operation, federated=False) for operation in _ASKED_BY_PEERS),
    # Another nation's gateway forwarding its user's request for a model or dataset this nation owns.
    *(Route("POST", operation, federated=True) for operation in _ASKED_BY_PEERS),
)
