"""The platform's domain model: markings and nations. CRD specs, policy schema and engine input derive from it."""
