"""Objects handed to user code: the ``server``/``worker``/``req``/``resp`` arguments of hooks,
and ``wsgi.file_wrapper``.

They carry the attributes Gunicorn's hooks use; the Rust side keeps them current. They hold
no behaviour of the server itself.
"""


class _Namespace:
    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __repr__(self):
        keys = ("pid", "age", "method", "path", "status")
        shown = ", ".join(
            "%s=%r" % (k, self.__dict__[k]) for k in keys if k in self.__dict__
        )
        return "<%s %s>" % (type(self).__name__, shown)


class Arbiter(_Namespace):
    """``server`` in hooks: pid, cfg, log, app, num_workers, WORKERS, proc_name, ..."""


class Worker(_Namespace):
    """``worker`` in hooks: pid, ppid, age, alive, booted, aborted, nr, cfg, log, ..."""

    def notify(self):
        beat = self.__dict__.get("_beat")
        if beat is not None:
            beat()


class Request(_Namespace):
    """``req`` in pre_request/post_request: method, uri, path, query, version, headers, ..."""

    def should_close(self):
        return self.must_close


class Response(_Namespace):
    """``resp`` in post_request: status, status_code, headers, sent, response_length."""


class FileWrapper:
    """``wsgi.file_wrapper``: iterates a file-like object in blocks."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __getitem__(self, key):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise IndexError

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration
