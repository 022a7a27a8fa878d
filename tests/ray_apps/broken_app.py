"""An application whose import fails, for tests/test_ray_client.py (DEPLOY_FAILED with Ray's message)."""

raise RuntimeError("broken_app refuses to import")
