"""Operations: structured logs, tracing, metrics and health endpoints."""
