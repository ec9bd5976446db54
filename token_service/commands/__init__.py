"""Handling commands: decoding entries, handlers, the batch pipeline, expiry, leaked secrets."""
