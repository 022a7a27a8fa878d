"""The Tenant admission webhook alone, for `kopf run --standalone`: the product's handlers and server setup.

Used by test_tenant_admission.py beside the real operator until `python -m sovereign_operator` calls
configure_admission itself.
"""

from typing import Any

import kopf
from sovereign_operator.admission_server import configure_admission
from sovereign_operator.config import OperatorConfig


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    configure_admission(settings, OperatorConfig.from_environment())
