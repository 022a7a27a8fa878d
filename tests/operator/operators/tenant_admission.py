"""The Tenant admission webhook alone, for `kopf run --standalone`: the product's handlers and server setup.

Used by test_tenant_admission.py beside the real operator until `python -m sovereign_operator` calls
configure_admission itself.
"""

from typing import Any

import kopf
from sovereign_operator.admission_server import configure_admission
from sovereign_operator.config import OperatorConfig
from sovereign_operator.reconcile.context import OperatorContext

from sovereign.clients.kubernetes import load_api_client


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = OperatorConfig.from_environment()
    configure_admission(settings, config)
    memo.context = OperatorContext.connect(config, load_api_client())  # as the operator's startup makes it
