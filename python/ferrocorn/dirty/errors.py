"""Exceptions of the dirty-arbiter API, the same classes Gunicorn's ``gunicorn.dirty`` raises.

Owns the error hierarchy and its wire form (``{"error_type", "message", "details"}``) and
its rebuild on the client side. Knows nothing about sockets or processes.
"""


class DirtyError(Exception):
    """Base of every dirty-arbiter error; ``details`` carries what crossed the wire."""

    def __init__(self, message, details=None):
        self.message = message
        self.details = details or {}
        super().__init__(message)

    def __str__(self):
        if self.details:
            return "%s: %s" % (self.message, self.details)
        return self.message

    def to_dict(self):
        return {
            "error_type": type(self).__name__,
            "message": self.message,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, data):
        """Rebuild the error a peer sent: the class named by ``error_type`` (DirtyError when
        unknown), with the attributes its constructor would have set, read from details."""
        error_type = data.get("error_type") or "DirtyError"
        klass = _BY_NAME.get(error_type, DirtyError)
        err = Exception.__new__(klass)
        err.message = data.get("message") or "Unknown error"
        err.details = data.get("details") or {}
        Exception.__init__(err, err.message)
        for attr in _ATTRS.get(klass, ()):
            setattr(err, attr, err.details.get(attr))
        return err


class DirtyTimeoutError(DirtyError):
    """A dirty call, or the wait for it, went past its time limit."""

    def __init__(self, message="Operation timed out", timeout=None):
        super().__init__(message, {"timeout": timeout} if timeout else {})
        self.timeout = timeout


class DirtyConnectionError(DirtyError):
    """The dirty arbiter could not be reached, or the connection broke."""

    def __init__(self, message="Connection failed", socket_path=None):
        super().__init__(message, {"socket_path": socket_path} if socket_path else {})
        self.socket_path = socket_path


class DirtyWorkerError(DirtyError):
    """A dirty worker failed (died, refused the call) outside the app's own code."""

    def __init__(self, message, worker_id=None, traceback=None):
        details = {}
        if worker_id is not None:
            details["worker_id"] = worker_id
        if traceback:
            details["traceback"] = traceback
        super().__init__(message, details)
        self.worker_id = worker_id
        self.traceback = traceback


class DirtyAppError(DirtyError):
    """The dirty app raised; ``traceback`` is the formatted traceback from the dirty worker."""

    def __init__(self, message, app_path=None, action=None, traceback=None):
        details = {}
        if app_path:
            details["app_path"] = app_path
        if action:
            details["action"] = action
        if traceback:
            details["traceback"] = traceback
        super().__init__(message, details)
        self.app_path = app_path
        self.action = action
        self.traceback = traceback


class DirtyAppNotFoundError(DirtyAppError):
    """No dirty app is configured (or importable) under that path."""

    def __init__(self, app_path):
        super().__init__("Dirty app not found: %s" % app_path, app_path=app_path)


class DirtyNoWorkersAvailableError(DirtyError):
    """The app is configured but no dirty worker that loads it is alive."""

    def __init__(self, app_path, message=None):
        if message is None:
            message = "No workers available for app: %s" % app_path
        super().__init__(message, details={"app_path": app_path})
        self.app_path = app_path


class DirtyProtocolError(DirtyError):
    """A frame or payload that does not follow the wire format."""

    def __init__(self, message="Protocol error", raw_data=None):
        details = {}
        if raw_data is not None:
            if isinstance(raw_data, (bytes, bytearray, memoryview)):
                raw_data = bytes(raw_data[:100]).hex()
            details["raw_data"] = str(raw_data)[:200]
        super().__init__(message, details)


_BY_NAME = {
    k.__name__: k
    for k in (
        DirtyError,
        DirtyTimeoutError,
        DirtyConnectionError,
        DirtyWorkerError,
        DirtyAppError,
        DirtyAppNotFoundError,
        DirtyNoWorkersAvailableError,
        DirtyProtocolError,
    )
}

# Attributes each class's constructor sets, restored from ``details`` on rebuild.
_ATTRS = {
    DirtyTimeoutError: ("timeout",),
    DirtyConnectionError: ("socket_path",),
    DirtyWorkerError: ("worker_id", "traceback"),
    DirtyAppError: ("app_path", "action", "traceback"),
    DirtyAppNotFoundError: ("app_path", "action", "traceback"),
    DirtyNoWorkersAvailableError: ("app_path",),
}
