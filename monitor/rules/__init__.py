"""Compliance rules: pure objects fed transcripts, tones and call events."""
from monitor.rules.engine import RuleEngine, RuleOptions

__all__ = ["RuleEngine", "RuleOptions"]
