"""nbmake runs every notebook here with its default parameters; this makes those work.

nbmake's notebook items take no fixtures, so a hook prepares them: before the first notebook
a sandbox is started (kernels inherit ``STEMKIT_SANDBOX_URL``) and the scratch batch that the
defaults point at (``reports/scratch`` on ``data/demo``) is separated, so ``analyze`` and
``compare`` can run in any order. The separate notebook then resumes it from the ledger.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_started: list = []


def pytest_runtest_setup(item) -> None:
    if _started or not str(item.fspath).endswith(".ipynb"):
        return
    from stemkit.sandbox import SandboxServer
    from stemkit.separate.run import separate_batch

    os.environ.setdefault("STEMKIT_SOURCERESS_POLL_INTERVAL", "0.1")
    # credentials as the environment names them (the test session may export its own)
    env = os.environ
    scratch = ROOT / "reports" / "scratch"
    server = SandboxServer(
        workers=2,
        # the scratch batch outlives a test run: its sandbox keeps its jobs beside it, so a
        # rerun of the suite resumes them (no `lost` transcriptions)
        state_dir=scratch / ".sandbox",
        sourceress_users={
            env.get("STEMKIT_SOURCERESS_USERNAME", "demo"): env.get(
                "STEMKIT_SOURCERESS_PASSWORD", "demo"
            )
        },
        audioshake_tokens={env.get("STEMKIT_AUDIOSHAKE_TOKEN", "demo-token"): "demo"},
        loom_keys={env.get("STEMKIT_LOOM_KEY", "demo"): env.get("STEMKIT_LOOM_SECRET", "demo")},
    ).start()
    _started.append(server)
    item.session.config.add_cleanup(server.stop)
    separate_batch(ROOT / "data" / "demo", ["sourceress"], scratch, progress=False)
