"""ferrocornc, the control-socket client: `client` speaks the protocol, `format` lays out
replies, `cli` is the command line."""

from ferrocorn.ctl.client import ControlClient, ControlError

__all__ = ["ControlClient", "ControlError"]
