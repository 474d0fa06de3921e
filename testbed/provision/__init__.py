"""Provisioning with Ansible (through ansible-runner): the preconfigured keys made and checked
on the controller, pushed into lab nodes (through their namespaces) or real machines (SSH),
rotated while the agents run. Above ``testbed.lab``, below ``testbed.experiments``.

- ``keyset``: the keys of a deployment, their checks (R1, R3, R10) and the controller's key store
- ``inventory``: Ansible inventories (a running lab's, or a user's file)
- ``runner``: one playbook run through ansible-runner, secrets kept out of everything it writes
- ``api``: push, check, rekey
- ``labkeys``: ``AnsibleKeys``, the key installer the lab's agents use by default above the lab
- ``sshnodes``: sshd in lab nodes standing in for real machines
"""
