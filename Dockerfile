# The token service image: one for the command handler (and, later, the audit worker).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contracts contracts
COPY token_service token_service
COPY workers workers
COPY tokenctl tokenctl
COPY specs specs
COPY authz authz
RUN pip install --no-cache-dir ".[service,cli,authz]"
USER nobody
CMD ["python", "-m", "token_service"]
