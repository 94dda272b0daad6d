#!/usr/bin/env python3
"""Regenerates the strongSwan test vectors in this directory from the outputs of
/work/shared/tools/strongswan/swan_pair.sh --out DIR.

    python3 extract.py DIR NAME.txt [CAPTURE.pcap]

Writes every IKE message of the capture (UDP 500, and UDP 4500 after the non-ESP marker)
as hex, and for each message with an SK payload the decrypted inner payload chain (padding
removed), its first payload type and the length of the authenticated part before the
ciphertext (for SKF fragments, RFC 7383, the chain reassembled under the first fragment's
name), decrypted here with the keys charon logged
(AES-GCM per RFC 5282, or AES-CBC per RFC 7296 §3.14) using the `cryptography` package.
The responder's configured proposals (swanctl.conf) are kept as config_ike / config_esp,
the initiator's as initiator_ike / initiator_esp,
and what its log says it selected as comments.
"""
import hashlib
import hmac
import json
import re
import struct
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from scapy.all import UDP, rdpcap

EXCHANGES = {34: "sa_init", 35: "auth", 36: "create_child", 37: "informational"}
ICV_LEN = {"HMAC_SHA2_256_128": 16, "HMAC_SHA2_384_192": 24, "HMAC_SHA2_512_256": 32, "HMAC_SHA1_96": 12}
HASH = {"HMAC_SHA2_256_128": hashlib.sha256, "HMAC_SHA2_384_192": hashlib.sha384,
        "HMAC_SHA2_512_256": hashlib.sha512, "HMAC_SHA1_96": hashlib.sha1}


def ike_messages(pcap):
    for pkt in rdpcap(pcap):
        if UDP not in pkt:
            continue
        udp = pkt[UDP]
        data = bytes(udp.payload)
        if 500 in (udp.sport, udp.dport):
            yield data
        elif 4500 in (udp.sport, udp.dport) and data[:4] == b"\0\0\0\0":
            yield data[4:]


def find_sk(msg):
    """Offset of the SK or SKF payload's generic header, its Next Payload and its type."""
    kind, off = msg[16], 28
    while kind not in (0, 46, 53):
        nxt, _, length = struct.unpack(">BBH", msg[off:off + 4])
        kind, off = nxt, off + length
    if kind == 0:
        return None
    return off, msg[off], kind


def decrypt(msg, keys, proposal):
    """(first inner payload type, inner payloads, length of the authenticated header part,
    (fragment number, total) or None), or None when there is nothing to decrypt."""
    found = find_sk(msg)
    if found is None or msg[:8].hex() != keys["spi_i"]:
        return None
    off, first, kind = found
    # SK: the IKE header and the SK payload header are authenticated; SKF (RFC 7383): the
    # fragment number and total too.
    aad_len = off + (8 if kind == 53 else 4)
    fragment = struct.unpack(">HH", msg[off + 4:off + 8]) if kind == 53 else None
    initiator = bool(msg[19] & 0x08)
    key = bytes.fromhex(keys["Sk_ei" if initiator else "Sk_er"])
    body = msg[aad_len:]
    if proposal.startswith("AES_GCM_16"):
        iv, sealed = body[:8], body[8:]
        plain = AESGCM(key[:-4]).decrypt(key[-4:] + iv, sealed, msg[:aad_len])
    else:
        integ = next(name for name in ICV_LEN if name in proposal)
        icv_len = ICV_LEN[integ]
        # The ICV covers the whole message before it (RFC 7296 §3.14).
        auth_key = bytes.fromhex(keys["Sk_ai" if initiator else "Sk_ar"])
        icv = hmac.new(auth_key, msg[:-icv_len], HASH[integ]).digest()[:icv_len]
        if icv != msg[-icv_len:]:
            raise ValueError("integrity check failed")
        iv, cipher = body[:16], body[16:-icv_len]
        dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        plain = dec.update(cipher) + dec.finalize()
    pad = plain[-1]
    return first, plain[:-1 - pad], aad_len, fragment


def main(out_dir, name, pcap=None):
    keys = json.load(open(f"{out_dir}/keys.json"))
    proposal = keys["ike_proposal"]
    lines = [f"# strongSwan 5.9.8 pair (swan_pair.sh), IKE proposal {proposal}, auth {keys['auth']}"]
    for log_line in open(f"{out_dir}/b.log"):
        m = re.search(r"(received|configured|selected) proposals?: (.*)", log_line)
        if m:
            lines.append(f"# responder {m.group(1)}: {m.group(2)}")
    for side, prefix in (("b", "config"), ("a", "initiator")):
        for conf_line in open(f"{out_dir}/{side}/swanctl/swanctl.conf"):
            m = re.match(r"\s*(proposals|esp_proposals) = (.*)", conf_line)
            if m:
                kind = "esp" if m.group(1) == "esp_proposals" else "ike"
                lines.append(f"{prefix}_{kind} = {m.group(2).strip()}")
    counts = {}
    fragments = {}
    for msg in ike_messages(pcap or f"{out_dir}/outer.pcap"):
        kind = EXCHANGES.get(msg[18], f"exchange{msg[18]}")
        role = "response" if msg[19] & 0x20 else "request"
        base = f"{kind}_{role}"
        counts[base] = counts.get(base, 0) + 1
        if counts[base] > 1:
            base += f"_{counts[base]}"
        lines.append(f"{base} = {msg.hex()}")
        inner = decrypt(msg, keys["ike"], proposal)
        if inner is None:
            continue
        first, plain, aad_len, fragment = inner
        lines.append(f"{base}_aad_len = {aad_len}")
        if fragment is None:
            lines.append(f"{base}_inner_first = {first}")
            lines.append(f"{base}_inner = {plain.hex()}")
            continue
        # Fragments: the inner chain once the last one is in, under the first's name.
        number, total = fragment
        key = (msg[:8], msg[20:24], msg[19] & 0x20)
        pieces = fragments.setdefault(key, {})
        pieces[number] = (base, first, plain)
        if len(pieces) == total:
            first_name, first_type, _ = pieces[1]
            lines.append(f"{first_name}_inner_first = {first_type}")
            lines.append(f"{first_name}_inner = {b''.join(pieces[i][2] for i in range(1, total + 1)).hex()}")
    open(name, "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
