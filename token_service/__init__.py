"""The token service: command handling, the gateway library, Redis adapters and operations.

Each sub-package is one concern; see README, "How it works". Nothing is imported here, so
that a gateway importing ``token_service.gateway`` loads only what it needs.
"""
