"""The I/O shell around one protocol engine: one agent process per node (MN, CN or HA)."""
