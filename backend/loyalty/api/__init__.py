"""The HTTP API (v1): FastAPI app, dependencies, problems, schemas and routes."""
