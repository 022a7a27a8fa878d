"""The operator's end-to-end fixtures (tests/operator/conftest.py): the attacks need provisioned nations."""

from tests.operator.conftest import (  # noqa: F401  (fixtures)
    operator_extra_env,
    platform,
    pytest_runtest_makereport,
    running_operator,
)
