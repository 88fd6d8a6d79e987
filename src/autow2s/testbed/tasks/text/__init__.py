"""Offline text tasks whose labels are computed, not annotated: arith-verify and code-verify."""
