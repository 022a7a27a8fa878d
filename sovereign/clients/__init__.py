"""One client module per external system: Kubernetes, Vault (and later Ray). Nothing else talks to them."""
