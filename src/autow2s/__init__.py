"""autow2s: an automated alignment researcher for weak-to-strong supervision."""

__version__ = "0.1.0"
