"""The token service: command handler, token store and their settings."""

from token_service.keys import Keys
from token_service.settings import ServiceSettings

__all__ = ["Keys", "ServiceSettings"]
