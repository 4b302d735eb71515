"""Who a public-token client is: the network it speaks from.

Everyone shares the public token, so a project made with it belongs to the
address that created it. An IPv4 address counts as itself; an IPv6 client
counts as its /64 (privacy extensions rotate the rest). Only a keyed hash is
stored, never the address.
"""

import ipaddress

from django.utils.crypto import salted_hmac


def client_key(address: str) -> str:
    """The stored key for a client address (an unparsable address keys as itself)."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        network = address.strip()
    else:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        network = (
            str(ipaddress.ip_network(f"{ip}/64", strict=False))
            if isinstance(ip, ipaddress.IPv6Address)
            else str(ip)
        )
    return salted_hmac("projects.client-key", network).hexdigest()[:40]
