"""Model-family recipes driven by the engine. Importing this package registers every family."""
