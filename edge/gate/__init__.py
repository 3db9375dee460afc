"""The gate: the scan loop, its small web app, LAN peers."""
