"""Device drivers behind small interfaces (scanners, relays, printers). Imports nothing of ours.

Each driver is a pure decoder/encoder plus a thin adapter that touches the device (DESIGN 6):

- `devices.profiles`: device models from `firmware_profiles/*.toml` (`load_scanner`, `load_relay`,
  `list_profiles`, `ProfileError`).
- `devices.scanner`: the `Scanner` interface, `open_scanner(profile, device=None)`, simulated scanners.
- `devices.hid` + `devices.keymaps`: keyboard-wedge scanners (evdev), `HidDecoder`, `keystrokes`.
- `devices.serial_scanner`: serial (USB-CDC) scanners, `LineDecoder`.
- `devices.relay`: `Relay`, `PulseResult`, `open_relay(profile, port=None)`, `lcus_frame`.
- `devices.errors`: `DeviceError`, `DeviceNotFound`.

Nothing is imported here, so loading a profile does not pull in evdev or pyserial.
(Printers are filled in by the printing issue.)
"""
