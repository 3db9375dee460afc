"""Barcode scanners: the interface, HID keyboard wedges and keymaps, USB-CDC scanners."""
