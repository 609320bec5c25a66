"""The sandbox: a real local server of the vendor APIs (see :mod:`stemkit.sandbox.app`)."""

from stemkit.sandbox.app import create_app
from stemkit.sandbox.common import SandboxConfig
from stemkit.sandbox.server import SandboxServer, admin_get, serve
from stemkit.sandbox.state import StateBusy

__all__ = ["SandboxConfig", "SandboxServer", "StateBusy", "admin_get", "create_app", "serve"]
