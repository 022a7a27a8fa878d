"""The operator's end-to-end fixtures (tests/operator/conftest.py), for CLI tests that need live Tenants."""

from tests.operator.conftest import (  # noqa: F401  (fixtures)
    operator_extra_env,
    platform,
    pytest_runtest_makereport,
    running_operator,
)
