"""Local real-time compliance monitor for Mandarin service calls."""

__version__ = "0.1.0"
