"""Hub services behind the web layer: mail, print batches, nodes, provisioning, idempotency, the background worker."""
