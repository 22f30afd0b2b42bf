"""What every engine that talks to a MySQL/MariaDB server shares (docs/architecture.md §11).

- `errors`: server errors by code, the one transient / permanent classification (§7).
- `identifiers`: the identifier grammar, quoting and unquoting.
- `connections`: connections to MySQL targets and the engine error a server error becomes.
- `tls`: TLS connect arguments from a DSN's `ssl_*` parameters (targets and the state database).
- `ddl_text`: the quote-aware scanner of DDL text and the careful rewrites built on it.
"""
