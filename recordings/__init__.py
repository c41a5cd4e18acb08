"""Consent-gated recording: the gate, the ledger, the recorder, storage and its API."""
