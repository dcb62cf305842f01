"""Scratch folders in the system's temporary folder that a killed process does not leave behind.

``tempfile.TemporaryDirectory`` removes its folder on leaving the block, but a process killed by SIGKILL
(the kernel's out-of-memory killer, a CI job's timeout, ``kill -9``) never leaves it: the folder stays in
the temporary folder for good, with what was written there (an optimised copy of the int8 model for the
coverage count, a copy of the model with its activations exposed, OpenVINO's compiled models). A
SIGKILLed test run had left one OpenVINO cache folder in /tmp per run.

A scratch folder is a staging folder of its own kind (core/staging.py: the host and pid in its name, an
advisory lock held for its whole life), and opening one first removes those whose process is gone, as
``edgeport quantize`` does with its staging folders beside the output.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgeport.core.staging import make_staging_dir, release_staging, remove_stale_staging

SCRATCH = "edgeport-scratch"


@contextmanager
def scratch_folder(label: str) -> Iterator[Path]:
    """A fresh folder ``.edgeport-scratch-<label>-<host>@<pid>-<random>`` in the temporary folder
    (``TMPDIR``), removed on leaving; scratch folders of processes that are gone are removed first."""
    parent = Path(tempfile.gettempdir())
    remove_stale_staging(parent, kinds=(SCRATCH,))
    folder = make_staging_dir(parent, SCRATCH, label)
    try:
        os.chmod(folder, 0o700)  # the temporary folder is shared: our model copies are no one else's to read
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        release_staging(folder)


__all__ = ["SCRATCH", "scratch_folder"]
