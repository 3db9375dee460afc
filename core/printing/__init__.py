"""Printing: the print queue of a node, card layouts and till receipts."""
