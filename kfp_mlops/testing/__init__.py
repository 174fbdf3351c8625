"""Test helpers shared by the components' tests (standard library only: importable in every venv)."""
