"""The files the protocol depends on: key files and the durable sequence store.

The protocol core (``testbed.mip6``) does no I/O; this layer, above it and below the agents,
reads and writes what it parses and decides: preconfigured data and MN-HA keys
(``keyfiles``, through ``secretfiles``), and the sequence records the engines ask to make
durable (``sequences``). The agents, the lab, provisioning and the commands use it.
"""
