import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture
def root():
    """A fresh directory for the homes of a test, short (Unix socket paths are limited)."""
    directory = Path(tempfile.mkdtemp(prefix="vp", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)
