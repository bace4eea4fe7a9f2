"""A module that fails while being imported, as a real app with a bug would."""

raise RuntimeError("broken_import: this module fails at import time")
