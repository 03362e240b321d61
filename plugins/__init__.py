"""The built-in posezoo model plugins (import package ``posezoo_plugins``)."""
