"""Loaded by every Python subprocess a test starts (conftest puts this folder on
PYTHONPATH): the same fake resolver and connect tripwire as the test process."""

import hermetic

hermetic.install()
