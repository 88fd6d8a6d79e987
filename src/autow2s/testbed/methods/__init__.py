"""Baseline W2S methods, one file each, registered by name; and loading of method directories."""

from autow2s.testbed.methods.registry import METHODS, Method, load_method, register

__all__ = ["METHODS", "Method", "load_method", "register"]
