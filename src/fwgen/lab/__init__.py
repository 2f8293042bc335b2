"""The kernel lab: throw-away network namespaces on the machine fwgen runs on, a server
and clients on veth links, the firewalls' own loaders (nft, iptables-restore, ufw and
the real firewalld in a private mount namespace), and an agent that listens and probes
inside them. `fwgen verify` and fwgen's own kernel tests both use it.

Nothing here touches the machine's own namespace, firewall or files.
"""
