"""The emulated network: Mininet topologies, link delay, handover, captures and the lab life cycle."""
