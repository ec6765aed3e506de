"""Wire shapes only, no I/O: JSON-RPC framing, the two protocol eras, server-sent events."""
