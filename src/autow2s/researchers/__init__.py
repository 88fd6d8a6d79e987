"""Researchers: policies that act only through tools (search, claude, openai, replay)."""
