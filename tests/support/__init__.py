"""Helpers shared by the test folders, imported as ``tests.support.<module>`` (the checkout is on
``sys.path`` through pytest's ``pythonpath = .``). Fixtures live in the conftest.py files."""
