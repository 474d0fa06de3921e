"""Diagnostics over captured Mobile IPv6 signalling (RFC 4449: "testing and diagnostics").

``capture`` reads pcap/pcapng files with scapy and hands out the IPv6 octets of each frame;
``keymaterial`` derives the RFC 6275 tokens and Kbm from preconfigured data; ``verify``
decodes every Mobility Header with our own codec and checks its checksum and Binding
Authorization Data. Imports only ``testbed.mip6`` and scapy (scapy only in ``capture``).
"""
