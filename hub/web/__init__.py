"""The hub's HTTP layer: API plumbing, auth, read cache, OpenAPI, problems, pages, schemas, /p/ pages, routes."""
