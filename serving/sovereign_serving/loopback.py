"""Keep a replica's own server on loopback when its Ray node is (the devstack's local Ray).

Ray Serve 2.60 starts an inter-deployment gRPC server in every replica bound to `[::]:0`, whatever the node's
IP (`ray.serve._private.replica`, `_on_initialized`); nothing in Ray's configuration changes that host. On a
node whose IP is loopback every other Ray process listens on 127.0.0.1 (the devstack's `ray_head_spec`), and
peers reach this server at the node's IP, so binding it to 127.0.0.1 there changes nothing but who can
connect. On any other node (KubeRay pods) this does nothing. Each deployment calls it in its constructor,
which Ray Serve runs before it starts that server.
"""

from __future__ import annotations

from typing import Any

LOOPBACK_NODE_IPS = ("127.0.0.1", "::1")
_ALL_INTERFACES = "[::]:"


def keep_replica_server_on_loopback() -> None:
    import ray
    from ray.serve._private import replica

    if ray.util.get_node_ip_address() not in LOOPBACK_NODE_IPS:
        return
    original = replica.add_port_to_grpc_server
    if getattr(original, "sovereign_loopback", False):
        return

    def on_loopback(server: Any, address: str) -> Any:
        if address.startswith(_ALL_INTERFACES):
            address = "127.0.0.1:" + address.removeprefix(_ALL_INTERFACES)
        return original(server, address)

    on_loopback.sovereign_loopback = True  # type: ignore[attr-defined]
    replica.add_port_to_grpc_server = on_loopback
