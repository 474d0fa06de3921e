#!/usr/bin/python
# Module of mip6-testbed: install secret files idempotently, their content never written elsewhere.
from __future__ import annotations

DOCUMENTATION = r"""
module: mip6_key_files
short_description: install key files (0600) in a key directory (0700), idempotently
description:
  - Makes I(dir) a directory of I(owner) with mode 0700, then writes each file of I(files) into it
    with mode 0600 unless it already holds exactly that content, mode and owner. A file is
    written beside its final name and renamed over it (never half-written), after an fsync.
  - The contents come in as module arguments (with pipelining, through the pipe to the module;
    no temporary file on the controller or the node) and are never returned.
  - Files in I(dir) matching one of I(prune) and not in I(files) are removed.
  - Supports check mode (reports what would change).
options:
  dir:
    description: the key directory (absolute)
    type: path
    required: true
  files:
    description: file name (no directory part) to content
    type: dict
    required: true
  prune:
    description: shell patterns of files in I(dir) that must be in I(files) or go
    type: list
    elements: str
    default: []
  owner:
    description: numeric user id owning the directory and files
    type: int
    default: 0
  group:
    description: numeric group id
    type: int
    default: 0
  control_socket:
    description:
      - the control socket of the agent using these files; default, the one named by
        C(control_socket) in I(dir)/agent.yaml, if that file exists
    type: path
author: mip6-testbed
"""

RETURN = r"""
written:
  description: names of the files written (or that would be, in check mode)
  type: list
  returned: always
removed:
  description: names of the files removed
  type: list
  returned: always
control_socket:
  description: the agent's control socket if it exists now (a running agent to reload), else ""
  type: str
  returned: always
"""

import fnmatch
import os
import re
import stat

from ansible.module_utils.basic import AnsibleModule


def _same(path, payload, owner, group):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) != 0o600 or (st.st_uid, st.st_gid) != (owner, group):
            return False
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks) == payload
    finally:
        os.close(fd)


def _write(directory, name, payload, owner, group):
    final = os.path.join(directory, name)
    tmp = os.path.join(directory, ".%s.new" % name)
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchown(fd, owner, group)
        os.fchmod(fd, 0o600)
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)


def _agent_socket(directory, given):
    """The agent's control socket, if it is a socket now."""
    path = given
    if not path:
        try:
            with open(os.path.join(directory, "agent.yaml"), encoding="utf-8") as fh:
                match = re.search(r"^control_socket:\s*['\"]?([^'\"\s#]+)", fh.read(), re.MULTILINE)
        except OSError:
            match = None
        path = match.group(1) if match else ""
    try:
        return path if path and stat.S_ISSOCK(os.stat(path).st_mode) else ""
    except OSError:
        return ""


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dir=dict(type="path", required=True),
            files=dict(type="dict", required=True, no_log=True),
            prune=dict(type="list", elements="str", default=[]),
            owner=dict(type="int", default=0),
            group=dict(type="int", default=0),
            control_socket=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    try:
        _install(module)
    except OSError as exc:  # the path and the reason, never a file's contents
        # a rename names its target second: that is the path in the way
        path = getattr(exc, "filename2", None) or exc.filename or module.params["dir"]
        _fail(module, "%s: %s" % (path, exc.strerror or exc))


def _fail(module, msg):
    """Fail with ``msg`` also as ``mip6_error``: the task runs with no_log (its arguments hold
    the secrets), so the playbook shows this field, which names paths and reasons only."""
    module.fail_json(msg=msg, mip6_error=msg)


def _install(module):
    p = module.params
    directory, owner, group = p["dir"], p["owner"], p["group"]
    if not os.path.isabs(directory):
        _fail(module, "dir must be an absolute path")
    for name in p["files"]:
        if not name or "/" in name or name in (".", "..") or name.startswith("."):
            _fail(module, "file name %r must be a plain name (no directory part, no leading dot)" % name)
    changed = False
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        _fail(module, "%s exists and is not a directory" % directory)
    if st is None:
        changed = True
        if not module.check_mode:
            os.makedirs(directory, mode=0o700)
            os.chown(directory, owner, group)
            os.chmod(directory, 0o700)
    elif stat.S_IMODE(st.st_mode) != 0o700 or (st.st_uid, st.st_gid) != (owner, group):
        changed = True
        if not module.check_mode:
            os.chown(directory, owner, group)
            os.chmod(directory, 0o700)
    written, removed = [], []
    for name in sorted(p["files"]):
        payload = (p["files"][name] or "").encode("utf-8")
        if st is not None and _same(os.path.join(directory, name), payload, owner, group):
            continue
        written.append(name)
        if not module.check_mode:
            _write(directory, name, payload, owner, group)
    if p["prune"] and st is not None:
        for name in sorted(os.listdir(directory)):
            if name not in p["files"] and any(fnmatch.fnmatchcase(name, pat) for pat in p["prune"]):
                removed.append(name)
                if not module.check_mode:
                    os.unlink(os.path.join(directory, name))
    if written or removed:
        changed = True
        if not module.check_mode:
            dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    module.exit_json(changed=changed, written=written, removed=removed,
                     control_socket=_agent_socket(directory, p["control_socket"]))


if __name__ == "__main__":
    main()
