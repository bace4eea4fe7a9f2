"""Marker files the test apps write for the tests to poll.

A test waits for the file to exist and then reads it, so the content has to
be there the moment the name appears: write a temporary name, then rename.
"""

import os


def write_marker(path, text):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
