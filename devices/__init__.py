"""Device drivers behind small interfaces (scanners, relays, printers). Imports nothing of ours.

Each driver is a pure decoder/encoder plus a thin adapter that touches the device (DESIGN 6):

- `devices.profiles`: device models from `firmware_profiles/*.toml` (`load_scanner`, `load_relay`,
  `list_profiles`, `ProfileError`).
- `devices.scanners.base`: the `Scanner` interface, `open_scanner(profile, device=None)`, simulated scanners.
- `devices.scanners.hid` + `devices.scanners.keymaps`: keyboard-wedge scanners (evdev), `HidDecoder`, `keystrokes`.
- `devices.scanners.usb_cdc`: serial (USB-CDC) scanners, `LineDecoder`.
- `devices.relays`: `Relay`, `PulseResult`, `open_relay(profile, port=None)`, `lcus_frame`.
- `devices.errors`: `DeviceError`, `DeviceNotFound`.

Nothing is imported here, so loading a profile does not pull in evdev or pyserial.
(Printers are filled in by the printing issue.)
"""
