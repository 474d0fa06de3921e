"""Every command the README shows is run by CI or a test, or marked as needing a VM provider.

Commands are the lines of the README's ```sh blocks and the inline code spans of its prose
(not its tables, which give usage synopses) that start with a command (`bash scripts/`,
`testbed`, `ansible-*`, `vagrant`, `ruby`, ...). Each must carry the comment
`# needs a VM provider`, or match an entry of RUN_BY naming the test (or the CI script)
that runs that command: the same program and subcommand, with the options the README shows
or the test's own values for paths and addresses. The entry's test must exist.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
VM_MARK = "needs a VM provider"
STARTS = ("bash scripts/", "testbed ", ".venv/bin/testbed ", "ansible-", "vagrant ", "ruby ", "MIP6_PROFILE=")
PLACEHOLDER = re.compile(r"\.\.\.|\b[A-Z]{2,}(?::[A-Z]+)?\b(?!=)")  # a synopsis: FILE, DIR, MN:CN, ...

# command pattern -> where it runs ("path::test", or "path" for a script CI runs)
RUN_BY = {
    r"bash scripts/test": ".ci/run",
    r"bash scripts/test \S.*": "tests/unit/test_readme_commands.py::test_scripts_test_passes_its_arguments_to_pytest",
    r"bash scripts/run( .*)?": "tests/agent/test_experiment_cli.py::test_readme_main_command_as_written_from_the_repository_root",
    r"(\.venv/bin/)?testbed check-host( --seconds \d+)?( --json)?":
        "tests/unit/test_check_host.py::test_features_figures_and_a_verdict_that_matches_the_exit_status",
    r"testbed keygen --home-address \S+ --correspondent \S+( --out \S+)?":
        "tests/unit/test_cli_keygen.py::test_r1_r3_keygen_out_writes_a_0600_file_that_passes_check",
    r"testbed kbm --keys \S+ --coa \S+( --json)?": "tests/unit/test_cli_kbm.py::test_kbm_without_show_secrets_prints_no_token_or_key",
    r"testbed verify-pcap \S+ --keys \S+( --json)?": "tests/unit/test_verify_pcap.py::test_json_output_has_no_secrets",
    # a subcommand named in prose: a test runs it
    r"testbed agent": "tests/agent/test_cn_agent.py::test_precomputed_bu_is_accepted_by_the_agent_and_logged",
    r"testbed lab": "tests/lab/test_lab_selftests.py::test_pingall",
    r"testbed keygen": "tests/unit/test_cli_keygen.py::test_r1_r3_keygen_prints_yaml_that_passes_the_validator",
    r"testbed kbm": "tests/unit/test_cli_kbm.py::test_kbm_json",
    r"testbed experiment storm( .*)?": "tests/lab/test_storm.py::test_storm_of_twenty_mobiles_every_binding_follows",
    r"testbed load( --mobiles [0-9 ]+)?": "tests/lab/test_load.py::test_reduced_load_binds_every_mobile_and_reports_sane_figures",
    r"testbed lab --topo handover --test delay": "tests/lab/test_lab_selftests.py::test_delay",
    r"ansible-playbook -i localhost, -c local playbooks/lab.yml --check":
        "tests/unit/test_provision.py::test_lab_playbook_in_check_mode_on_this_host",
    r"ansible-inventory -i playbooks/inventory/multihost.yml --list":
        "tests/unit/test_vagrantfile.py::test_multihost_inventory_lists_with_ansible_inventory",
    r"ruby -c Vagrantfile": "tests/unit/test_vagrantfile.py::test_ruby_parses_the_vagrantfile",
    r"(MIP6_PROFILE=\w+ )?vagrant validate --ignore-provider": "tests/unit/test_vagrantfile.py::test_vagrant_validates_every_profile",
}


def readme_commands() -> list[tuple[int, str, bool]]:
    """(line number, command, marked as needing a VM provider). An inline command is marked
    when the same command is marked in a block."""
    out = []
    in_sh = in_other = False
    for n, line in enumerate(README.read_text().splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            if in_sh or in_other:
                in_sh = in_other = False
            elif stripped == "```sh":
                in_sh = True
            else:
                in_other = True
            continue
        if in_other:
            continue
        if in_sh:
            command, _, comment = stripped.partition("  #")
            if command.strip():
                out.append((n, " ".join(command.split()), VM_MARK in comment))
            continue
        if stripped.startswith("|"):
            continue  # tables: usage synopses
        for span in re.findall(r"`([^`]+)`", line):
            if span.startswith(STARTS) and not PLACEHOLDER.search(span):
                out.append((n, " ".join(span.split()), False))
    marked = {c for _, c, vm in out if vm}
    return [(n, c, vm or c in marked) for n, c, vm in out]


def test_the_readme_shows_commands():
    commands = [c for _, c, _ in readme_commands()]
    assert "bash scripts/run" in commands and "bash scripts/test" in commands
    assert any(c.startswith("vagrant up") for c in commands)


def test_every_readme_command_is_run_by_ci_or_a_test_or_needs_a_vm():
    unknown = []
    for n, command, vm in readme_commands():
        if vm:
            continue
        if not any(re.fullmatch(pattern, command) for pattern in RUN_BY):
            unknown.append(f"README.md:{n}: {command}")
    assert not unknown, "commands no test runs (add the test to RUN_BY, or mark '# needs a VM provider'):\n" + \
        "\n".join(unknown)


@pytest.mark.parametrize("where", sorted(set(RUN_BY.values())))
def test_each_named_test_exists(where):
    path, _, name = where.partition("::")
    text = (ROOT / path).read_text()
    if name:
        assert re.search(rf"^def {re.escape(name)}\(", text, re.M), f"{where} is gone"
    else:
        assert "bash scripts/test" in text


def test_vm_marks_are_only_on_commands_that_need_a_vm():
    marked = [c for _, c, vm in readme_commands() if vm]
    assert marked and all(c.startswith(("vagrant ", "MIP6_PROFILE=")) or "multihost.yml" in c for c in marked), marked


def test_scripts_test_passes_its_arguments_to_pytest():
    """`bash scripts/test tests/unit -q` as the README says, with a small selection here."""
    done = subprocess.run(["bash", "scripts/test", "tests/unit/test_events_doc.py", "-q", "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert re.search(r"\b3 passed\b", done.stdout), done.stdout[-500:]
    assert sys.executable  # the same interpreter's virtualenv ran it (scripts/install made it)
