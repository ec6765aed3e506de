"""The relay: transports toward the client and the upstreams, and the sessions between them."""
