# The token service image: the command handler, the audit worker and the web console.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contracts contracts
COPY token_service token_service
COPY workers workers
COPY tokenctl tokenctl
COPY specs specs
COPY console console
COPY authz authz
RUN pip install --no-cache-dir ".[service,cli,console,authz]"
USER nobody
CMD ["python", "-m", "token_service"]
