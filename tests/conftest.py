import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pytest  # noqa: E402

from tests.support.server import RUNNING  # noqa: E402


@pytest.fixture(autouse=True)
def no_server_outlives_its_test():
    """A server a test started and did not stop (it failed half way, say) is killed, and the
    test fails: a leftover server would load the machine for every test after it."""
    yield
    leftovers = list(RUNNING)
    for server in leftovers:
        server.stop(signal.SIGKILL)
    assert not leftovers, f"{len(leftovers)} livedash process(es) left running by the test"


FIGURES = pytest.StashKey[list]()


@pytest.fixture(scope="session")
def figures(request):
    """Lines a test wants shown at the end of the run, passed or not (the booted guests' timings)."""
    return request.config.stash.setdefault(FIGURES, [])


def pytest_terminal_summary(terminalreporter, config):
    lines = config.stash.get(FIGURES, [])
    if lines:
        terminalreporter.section("figures")
        for line in lines:
            terminalreporter.write_line(line)
