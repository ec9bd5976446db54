"""tokenctl: the administrator's command line for the token service."""
