"""How long ``testbed agent --config FILE`` takes to refuse the configuration files of issue 9
(not UTF-8, a named pipe, 50 MB): one line, exit 2, goal well under a second each, process
start-up included. A smoke run in CI; ``pytest benchmarks/test_agent_config_refusal.py
--benchmark-enable`` prints the figures."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cfg")
    (d / "latin1.yaml").write_bytes(b"role: cn\nnode: caf\xe9\n")
    os.mkfifo(d / "fifo.yaml")
    with open(d / "big.yaml", "wb") as f:
        f.truncate(50 * 1000 * 1000)
    return d


@pytest.mark.parametrize("name", ["latin1.yaml", "fifo.yaml", "big.yaml"])
def test_agent_refuses_bad_configuration(benchmark, files, name):
    def refuse():
        return subprocess.run([sys.executable, "-m", "testbed.cli", "agent", "--config", str(files / name)],
                              capture_output=True, text=True, timeout=10)

    done = benchmark.pedantic(refuse, rounds=3, iterations=1)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
