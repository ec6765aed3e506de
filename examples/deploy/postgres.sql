-- The shared store for several `mcp-guard serve` instances: one role, one database.
--
-- Run once as a PostgreSQL superuser, giving the role's password as a psql variable
-- (it then appears in no file and no shell history when read from a prompt):
--
--   read -rs GUARD_PW && psql -U postgres -v guard_password="$GUARD_PW" -f postgres.sql
--
-- The guard creates and upgrades its own tables at start (under an advisory lock, so instances
-- starting together migrate once), so its role owns the database and nothing more: it is not
-- a superuser, cannot create roles or databases, and nobody else may connect.

CREATE ROLE mcp_guard LOGIN PASSWORD :'guard_password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE DATABASE mcp_guard OWNER mcp_guard ENCODING 'UTF8' TEMPLATE template0;
REVOKE ALL ON DATABASE mcp_guard FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE mcp_guard TO mcp_guard;

\connect mcp_guard
-- PostgreSQL 15+ already keeps other roles out of the public schema; older servers do not.
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO mcp_guard;

-- Each instance then names the store with a DSN in its environment file (mode 0600):
--   MCP_GUARD_STORE=postgresql://mcp_guard:PASSWORD@db.internal:5432/mcp_guard?sslmode=verify-full
-- (percent-encode any of : / @ ? # % in the password). The store's pg_hba.conf line for the
-- guards' addresses should say `hostssl mcp_guard mcp_guard 10.0.0.0/24 scram-sha-256`.
