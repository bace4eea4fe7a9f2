"""A dirty app module that cannot be imported (tests/test_dirty_api.py)."""

raise RuntimeError("this dirty app module is broken on purpose")
