"""The shared core: the room's values, its pure rules and the consent gate, its events and
the errors every layer raises. It imports nothing of the project outside itself, so signalling,
recordings and media all build on it (docs/architecture.md)."""
