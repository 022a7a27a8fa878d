"""The operator's configuration from its environment: what it passes on to the nations' Ray processes."""

from __future__ import annotations

import pytest
from sovereign_operator.config import OperatorConfig

BASE = {"VAULT_ADDR": "http://vault:8200"}


def test_telemetry_settings_are_passed_on_but_never_collector_credentials_or_operator_files() -> None:
    config = OperatorConfig.from_environment(
        {
            **BASE,
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
            "OTEL_BSP_SCHEDULE_DELAY": "500",
            "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer collector-secret",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-api-key=collector-secret",
            "OTEL_EXPORTER_OTLP_CERTIFICATE": "/etc/operator/ca.pem",
            "OTEL_EXPORTER_OTLP_CLIENT_KEY": "/etc/operator/client.key",
            "HOME": "/root",
        }
    )
    assert config.telemetry_env == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_BSP_SCHEDULE_DELAY": "500",
    }


def test_a_bad_metrics_port_is_refused_with_the_variable_named() -> None:
    with pytest.raises(ValueError, match="metrics_port"):
        OperatorConfig.from_environment({**BASE, "SOVEREIGN_METRICS_PORT": "not-a-port"})


def test_the_dataset_source_root_defaults_to_the_data_volume_and_must_be_absolute() -> None:
    assert OperatorConfig.from_environment(BASE).dataset_source_root == "/var/lib/sovereign/sources"
    given = {**BASE, "SOVEREIGN_DATASET_SOURCE_ROOT": "/srv/sources"}
    assert OperatorConfig.from_environment(given).dataset_source_root == "/srv/sources"
    with pytest.raises(ValueError, match="dataset_source_root"):
        OperatorConfig.from_environment({**BASE, "SOVEREIGN_DATASET_SOURCE_ROOT": "sources"})
