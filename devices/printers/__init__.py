"""Printers: card printers and receipt (ESC/POS) printers."""
