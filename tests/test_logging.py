"""A stage's log on a CPU-only machine starts with what the stage says, not with JAX probing for a TPU."""

from __future__ import annotations

import os
import subprocess
import sys

STAGE = """
import logging
from pipeline.params import setup_logging
setup_logging()
import jax.numpy as jnp
jnp.zeros(1).block_until_ready()  # the first array: JAX initialises its backends here
logging.getLogger("train").info("stage started")
logging.getLogger("jax").warning("a warning of JAX's")
"""


def test_stage_log_has_no_backend_probe_but_keeps_jax_warnings():
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}  # as a user runs a stage: JAX probes
    log = subprocess.run([sys.executable, "-c", STAGE], capture_output=True, text=True, check=True, env=env).stderr
    assert "train: stage started" in log
    assert "a warning of JAX's" in log
    assert "Unable to initialize backend" not in log, log
