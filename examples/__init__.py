"""Runnable examples that the documentation quotes and the tests run."""
