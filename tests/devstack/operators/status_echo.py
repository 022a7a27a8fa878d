"""A minimal kopf operator for the devstack test: it answers each new Probe by patching the Probe's status."""

import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: object) -> None:
    settings.watching.server_timeout = 30
    settings.persistence.finalizer = "probes.devstack.test/kopf-finalizer"


@kopf.on.create("devstack.test", "v1", "probes")
def answer(spec: kopf.Spec, name: str, **_: object) -> dict[str, str]:
    # kopf stores the returned dict in status.answer
    return {"echo": f"{name}:{spec.get('message', '')}"}


@kopf.on.update("devstack.test", "v1", "probes", field="spec.message")
def answer_again(new: str, patch: kopf.Patch, **_: object) -> None:
    patch.status["lastMessage"] = new
