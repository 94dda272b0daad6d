#!/usr/bin/env python3
"""Known answers for espo-ike's key schedule from strongSwan sessions.

Each argument is an output directory of ../../../../../shared/tools/strongswan/swan_pair.sh
--out DIR (sw-a initiates): charon's level-4 log of sw-a (a.log) gives the Diffie-Hellman
secret, SKEYSEED and the seven SK keys; the capture (outer.pcap, read with tshark) gives the
IKE SPIs and both nonces; keys.json (the script's own extraction, proven by tshark's
decryption of the ESP capture) gives the first CHILD_SA's keys per direction. Prints one
block per session to stdout:

    [session NAME]
    ike = AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519
    esp = AES_GCM_16-128
    spi_i = ..., spi_r = ..., ni = ..., nr = ..., g_ir = ..., skeyseed = ..., sk_d = ...
    esp_i2r = KEY[:INTEG], esp_r2i = KEY[:INTEG]
"""
import json, os, re, subprocess, sys

NAMES = {"shared Diffie Hellman secret": "g_ir", "SKEYSEED": "skeyseed", "Sk_d secret": "sk_d",
         "Sk_ai secret": "sk_ai", "Sk_ar secret": "sk_ar", "Sk_ei secret": "sk_ei",
         "Sk_er secret": "sk_er", "Sk_pi secret": "sk_pi", "Sk_pr secret": "sk_pr"}


def log_values(path):
    """The first value of each name in a charon log (its hex dump lines follow it)."""
    out, current = {}, None
    for line in open(path, errors="replace"):
        m = re.search(r"\[IKE\] (.+?) => (\d+) bytes @", line)
        if m:
            current = NAMES.get(m.group(1)) if NAMES.get(m.group(1)) not in out else None
            if current:
                out[current] = ""
            continue
        m = re.search(r"\[IKE\]\s+\d+: ((?:[0-9A-F]{2} )+)", line)
        if m and current:
            out[current] += m.group(1).replace(" ", "").lower()
        elif current:
            current = None
    return out


def main():
    for d in sys.argv[1:]:
        name = os.path.basename(d.rstrip("/")).removeprefix("swan-ikewire-")
        v = log_values(os.path.join(d, "a.log"))
        rows = subprocess.run(
            ["tshark", "-r", os.path.join(d, "outer.pcap"), "-Y", "isakmp.exchangetype == 34",
             "-T", "fields", "-e", "isakmp.ispi", "-e", "isakmp.rspi", "-e", "isakmp.nonce"],
            capture_output=True, text=True, check=True).stdout.split("\n")
        inits = [r.split("\t") for r in rows if r.strip()]
        # The last IKE_SA_INIT pair (a retry after INVALID_KE_PAYLOAD or COOKIE comes last).
        req, resp = inits[-2], inits[-1]
        keys = json.load(open(os.path.join(d, "keys.json")))
        child = keys["child_sas"]
        i2r = next(c for c in child if c["src"] == "192.0.2.1")
        r2i = next(c for c in child if c["src"] == "192.0.2.2" and c["child"] == i2r["child"])
        fmt = lambda c: c["key"] + (":" + c["integrity_key"] if c.get("integrity_key") else "")
        print(f"[session {name}]")
        print(f"ike = {keys['ike_proposal']}")
        print(f"esp = {i2r['strongswan_alg']}")
        print(f"spi_i = {resp[0]}")
        print(f"spi_r = {resp[1]}")
        print(f"ni = {req[2]}")
        print(f"nr = {resp[2]}")
        for k in ["g_ir", "skeyseed", "sk_d", "sk_ai", "sk_ar", "sk_ei", "sk_er", "sk_pi", "sk_pr"]:
            print(f"{k} = {v.get(k, '')}")
        if keys.get("psk"):
            print(f"psk = {keys['psk'].removeprefix('0x')}")
        print(f"esp_i2r = {fmt(i2r)}")
        print(f"esp_r2i = {fmt(r2i)}")
        print()


if __name__ == "__main__":
    main()
