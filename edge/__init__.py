"""The appliance: replica store, outbox and sync client, cash-desk/counter web app, gate loop.

Depends on `core` and `devices` only. (Filled in by the sync, gate and cash-desk issues.)
"""
