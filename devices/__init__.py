"""Device drivers behind small interfaces (scanners, relays, printers). Imports nothing of ours.

(Filled in by the gate and printing issues; profiles live in `firmware_profiles/`.)
"""
