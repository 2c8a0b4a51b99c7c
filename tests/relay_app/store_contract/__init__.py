"""The store contract: what the node API and the inbox rely on, run against every engine."""
