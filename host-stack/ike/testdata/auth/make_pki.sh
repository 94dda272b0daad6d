#!/usr/bin/env bash
# A test PKI made by strongSwan's own `pki` (Debian strongswan-pki), for espo-ike's
# certificate tests (src/auth/tests.rs). Fixed dates, so that the tests can name the moment
# they validate at: everything is valid from 2026-01-01 to 2036-01-01, except where named.
# Rerunning makes new keys; the tests read whatever this script made.
set -euo pipefail
cd "$(dirname "$0")"
conf=$(mktemp); trap 'rm -f "$conf"' EXIT
printf 'pki {\n  load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey gmp\n}\n' > "$conf"
pk() { STRONGSWAN_CONF=$conf pki "$@" 2>/dev/null; }
F=(--dateform "%Y-%m-%d %H:%M:%S" --not-before "2026-01-01 00:00:00" --not-after "2036-01-01 00:00:00")
gen() { pk --gen --type "$1" ${2:+--size $2} --outform pem > "$3.key"; }
self_ca() { pk --self --ca --in "$1.key" --type priv --dn "$2" "${F[@]}" --outform pem > "$1.crt"; }
issue() { # issue NAME CA TYPE DN [options...]
  local name=$1 ca=$2 type=$3 dn=$4; shift 4
  pk --pub --in "$name.key" --type priv | pk --issue --cacert "$ca.crt" --cakey "$ca.key" --dn "$dn" --outform pem "$@" > "$name.crt"
}
# A 4096-bit RSA chain (root, intermediate, two end entities): IKE_AUTH with it does not fit
# a 1280-byte path, the ground of IKE fragmentation (tests/netns/ike.rs). `make_pki.sh rsa`
# makes only these.
rsa_chain() {
  gen rsa 4096 rsa-ca;     self_ca rsa-ca "C=XX, O=espo test, CN=espo test RSA CA"
  gen rsa 4096 rsa-sub;    issue rsa-sub rsa-ca priv "C=XX, O=espo test, CN=espo test RSA sub CA" --ca "${F[@]}"
  gen rsa 4096 rsa-gw-a;   issue rsa-gw-a rsa-sub priv "C=XX, O=espo test, CN=gw-a.rsa.espo.test" --san gw-a.rsa.espo.test "${F[@]}"
  gen rsa 4096 rsa-gw-b;   issue rsa-gw-b rsa-sub priv "C=XX, O=espo test, CN=gw-b.rsa.espo.test" --san gw-b.rsa.espo.test "${F[@]}"
}
if [ "${1:-}" = rsa ]; then
  rsa_chain; exit 0
fi
gen ecdsa 256 ca;          self_ca ca "C=XX, O=espo test, CN=espo test CA"
gen ecdsa 384 other-ca;    self_ca other-ca "C=XX, O=espo test, CN=another CA"
gen ecdsa 256 ee-ecdsa;    issue ee-ecdsa ca priv "C=XX, O=espo test, CN=gw-a.espo.test" --san gw-a.espo.test --san 192.0.2.1 "${F[@]}"
gen rsa 2048 ee-rsa;       issue ee-rsa ca priv "C=XX, O=espo test, CN=gw-b.espo.test" --san gw-b.espo.test --san user@espo.test "${F[@]}"
gen ed25519 "" ee-ed25519; issue ee-ed25519 ca priv "C=XX, O=espo test, CN=gw-c.espo.test" --san gw-c.espo.test "${F[@]}"
gen ecdsa 384 ee-p384;     issue ee-p384 ca priv "C=XX, O=espo test, CN=gw-d.espo.test" --san gw-d.espo.test "${F[@]}"
gen ecdsa 256 expired;     issue expired ca priv "C=XX, O=espo test, CN=old.espo.test" --san old.espo.test \
                             --dateform "%Y-%m-%d %H:%M:%S" --not-before "2026-01-01 00:00:00" --not-after "2026-02-01 00:00:00"
gen ecdsa 256 future;      issue future ca priv "C=XX, O=espo test, CN=new.espo.test" --san new.espo.test \
                             --dateform "%Y-%m-%d %H:%M:%S" --not-before "2030-01-01 00:00:00" --not-after "2036-01-01 00:00:00"
gen ecdsa 256 stranger;    issue stranger other-ca priv "C=XX, O=espo test, CN=stranger.espo.test" --san stranger.espo.test "${F[@]}"
# An intermediate CA that may have no CA below it, and one below it anyway: a path too long.
gen ecdsa 256 sub;         issue sub ca priv "C=XX, O=espo test, CN=sub CA" --ca --pathlen 0 "${F[@]}"
gen ecdsa 256 subsub;      issue subsub sub priv "C=XX, O=espo test, CN=sub-sub CA" --ca "${F[@]}"
gen ecdsa 256 deep;        issue deep subsub priv "C=XX, O=espo test, CN=deep.espo.test" --san deep.espo.test "${F[@]}"
gen ecdsa 256 under-sub;   issue under-sub sub priv "C=XX, O=espo test, CN=under-sub.espo.test" --san under-sub.espo.test "${F[@]}"
# An end entity that signed a certificate although it is no CA (pki refuses to: openssl,
# which does not check its issuer, makes it; valid for ten years from when it was made).
gen ecdsa 256 not-ca-child
openssl req -new -key not-ca-child.key -subj "/C=XX/O=espo test/CN=child.espo.test" -out not-ca-child.csr
openssl x509 -req -in not-ca-child.csr -CA ee-ecdsa.crt -CAkey ee-ecdsa.key -set_serial 7 \
  -days 3650 -out not-ca-child.crt 2>/dev/null
rm -f not-ca-child.csr
rsa_chain
ls -1 *.crt *.key | wc -l
