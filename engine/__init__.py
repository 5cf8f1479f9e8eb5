"""The module engine."""
