"""Privacy: the analyst's read-only access, retention, erasure of one person and the do-not-contact list."""
