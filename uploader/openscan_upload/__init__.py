"""Command-line uploader for OpenScan Portal and OpenScanCloud-compatible servers."""

__version__ = "0.1.0"
