"""Cards: the code on a card, keys and trust certificates, card records, gate access, trusted time."""
