"""Parts of the socket-level server fuzzer; ``fuzz/server_fuzz.py`` is the entry point.

This package owns only the shared paths: the repository root, the Gunicorn conformance corpus
next to it, and where findings are saved.
"""

from __future__ import annotations

from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parent.parent.parent
CONFORMANCE_DIR = REPO_ROOT.parent / "shared" / "conformance" / "gunicorn-requests"
FINDINGS_DIR = REPO_ROOT / "fuzz" / "server-findings"
