"""The one formatter for byte amounts, shared by the portal's pages and the admin.

Decimal units (1 GB = 1,000,000,000 bytes) everywhere, because credit, quotas and
limits are counted and configured that way.
"""

_UNITS = ("B", "kB", "MB", "GB", "TB")


def bytes_size(value: float) -> str:
    """1234567 -> '1.2 MB'; the sign is dropped (callers add their own)."""
    size = abs(float(value))
    for unit in _UNITS:
        if size < 1000 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{int(size)} B"
            return f"{size:.1f} {unit}" if size < 100 else f"{size:.0f} {unit}"
        size /= 1000
    return f"{size} B"
