"""What the Tenant handlers do, step by step: each module reads, compares, writes only what differs."""
