"""pyserial URL handlers: `sim://` (a virtual board) and `replay://` (a recorded raw serial log).

pyserial imports `<package>.protocol_<scheme>` for a URL once this package is in
`serial.protocol_handler_packages`; `harduino.transport.open_port` does that.
"""
