"""Consent-gated recording: recording control, the writer and recorder, the consent ledger,
manifests, storage, verification, retention and the REST API. The consent gate itself is in
the shared core (signaling/core/gate.py)."""
