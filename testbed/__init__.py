"""mip6-testbed: a network-emulation testbed for Mobile IPv6 route-optimisation security."""

__version__ = "0.1.0"
