#!/usr/bin/env python3
"""Regenerates scapy.txt: IKEv2 payloads strongSwan did not send in the captured sessions,
built with scapy's IKEv2 layer (scapy.contrib.ikev2), one unencrypted message per vector.

    python3 scapy_vectors.py > scapy.txt
"""
from scapy.contrib.ikev2 import (
    IKEv2, IKEv2_CERTREQ, IKEv2_CP, IKEv2_Delete, IKEv2_IDi, IKEv2_IDr, IKEv2_Notify, IKEv2_TSi,
    IKEv2_TSr, IKEv2_VendorID, IPv4TrafficSelector, IPv6TrafficSelector, ConfigurationAttribute,
    IKEv2_Encrypted_Fragment,
)

SPI_I = bytes.fromhex("0102030405060708")
SPI_R = bytes.fromhex("1112131415161718")


def header(exch, next_payload, flags, msg_id):
    return IKEv2(init_SPI=SPI_I, resp_SPI=SPI_R, next_payload=next_payload, exch_type=exch, flags=flags, id=msg_id)


vectors = {}

# scapy 2.8 computes an IPv6 selector's Selector Length as 20; RFC 7296 §3.13.1 makes it
# the whole substructure, 40 bytes, so it is given explicitly.
# CREATE_CHILD_SA-like content: FQDN and RFC 822 IDs, IPv6 selectors with ports, REKEY_SA.
vectors["ids_ipv6_ts"] = header(36, 35, "Initiator", 5) / IKEv2_IDi(
    next_payload=36, IDtype=2, ID=b"gw.example.org"
) / IKEv2_IDr(next_payload=41, IDtype=3, ID=b"peer@example.org") / IKEv2_Notify(
    next_payload=44, proto=3, SPIsize=4, type=16393, SPI=b"\xc0\xff\xee\x01"
) / IKEv2_TSi(
    next_payload=45,
    number_of_TSs=2,
    traffic_selector=[
        IPv6TrafficSelector(length=40, IP_protocol_ID=6, start_port=443, end_port=443,
                            starting_address_v6="2001:db8::", ending_address_v6="2001:db8::ffff"),
        IPv4TrafficSelector(IP_protocol_ID=0, start_port=0, end_port=65535,
                            starting_address_v4="10.1.0.0", ending_address_v4="10.1.255.255"),
    ],
) / IKEv2_TSr(
    next_payload=0,
    number_of_TSs=1,
    traffic_selector=[IPv6TrafficSelector(length=40, IP_protocol_ID=17, start_port=0, end_port=65535,
                                          starting_address_v6="fd00::1", ending_address_v6="fd00::1")],
)

# INFORMATIONAL content: a Delete of two ESP SAs, a Delete of the IKE SA, a vendor ID.
vectors["deletes"] = header(37, 42, "Response", 7) / IKEv2_Delete(
    next_payload=42, proto=3, SPIsize=4, SPInum=2, SPI=[b"\x00\x00\x10\x01", b"\x00\x00\x10\x02"]
) / IKEv2_Delete(next_payload=43, proto=1, SPIsize=0, SPInum=0) / IKEv2_VendorID(next_payload=0, vendorID=b"espo test")

# IKE_AUTH-like content: a CP request and reply attributes, a CERTREQ with two authorities.
vectors["cp_certreq"] = header(35, 47, "Initiator", 1) / IKEv2_CP(
    next_payload=38,
    CFGType=1,
    attributes=[
        ConfigurationAttribute(type=1, length=0),
        ConfigurationAttribute(type=3, length=0),
        ConfigurationAttribute(type=8, length=0),
    ],
) / IKEv2_CERTREQ(next_payload=0, cert_encoding=4, cert_authority=bytes(range(20)) + bytes(range(20, 40)))

# A second IKE_AUTH fragment (RFC 7383): SKF with fragment 2 of 3.
vectors["skf_second"] = header(35, 53, "Initiator", 1) / IKEv2_Encrypted_Fragment(
    next_payload=0, frag_number=2, frag_total=3, load=bytes(range(48))
)

print("# IKEv2 messages built with scapy (scapy_vectors.py); not sent by strongSwan")
for name, pkt in vectors.items():
    print(f"{name} = {bytes(pkt).hex()}")
