"""Who is calling ``serve``: caller authentication (OAuth 2.1 resource server, guard-issued tokens).

The front asks an :class:`~mcp_guard.auth.caller.Authenticator` about every request; what it gets
back, a :class:`~mcp_guard.auth.caller.Caller`, is the requester for policy, approvals, audit, vaults
and grants. A caller's credential never goes further than this package: upstreams get their own
credentials from the config.
"""
