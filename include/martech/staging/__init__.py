"""Staging: typed, deduplicated tables rebuilt from raw, with the row accounting that proves nothing was lost."""
