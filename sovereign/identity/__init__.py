"""Who a request speaks for: the nations' bearer tokens."""
