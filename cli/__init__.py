"""The `tessera` command line. Each sub-command lives in the module named after its area."""
