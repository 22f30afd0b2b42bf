"""schemabot: the domain (settings, storage, states, producer API, orchestration)."""
