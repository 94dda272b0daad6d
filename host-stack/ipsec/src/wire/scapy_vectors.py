# Generates the captured-bytes test vectors of espo_ipsec::wire with scapy (2.8), an
# independent implementation: `python3 scapy_vectors.py`. The Rust tests carry the output as
# byte arrays and need neither Python nor scapy.
from scapy.all import *
from scapy.layers.ipsec import SecurityAssociation, ESP, AH, zero_mutable_fields
from scapy.layers.l2 import Dot1AD

def arr(name, b):
    b = bytes(b)
    out = f"// {len(b)} bytes\nconst {name}: [u8; {len(b)}] = [\n"
    for i in range(0, len(b), 12):
        out += "    " + " ".join(f"0x{x:02x}," for x in b[i:i+12]) + "\n"
    return out + "];\n"

vec = {}
udp4 = IP(src="192.0.2.1", dst="198.51.100.7", id=0x1234, ttl=64, tos=0xb8, flags="DF")/UDP(sport=4500, dport=500)/Raw(b"espo!")
vec["IPV4_UDP"] = raw(udp4)
vec["IPV4_OPTIONS"] = raw(IP(src="10.0.0.1", dst="10.0.0.2", id=7, ttl=3, options=[IPOption_Router_Alert(), IPOption_RR(routers=["10.9.9.9"], pointer=8), IPOption_NOP(), IPOption_EOL()])/ICMP(type=8, code=0, id=1, seq=2)/Raw(b"ping"))
vec["ETH_VLAN_IPV4"] = raw(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01")/Dot1Q(vlan=100, prio=5)/udp4)
vec["ETH_QINQ_IPV6"] = raw(Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:01")/Dot1AD(vlan=10)/Dot1Q(vlan=20)/IPv6(src="2001:db8::1", dst="2001:db8::2")/UDP(sport=1234, dport=53)/Raw(b"q"))
ext6 = IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0xb9, fl=0x12345, hlim=17)/IPv6ExtHdrHopByHop(options=[RouterAlert(), PadN(optdata=b"\x00\x00")])/IPv6ExtHdrDestOpt(options=[HAO(hoa="2001:db8::99")])/IPv6ExtHdrRouting(addresses=["2001:db8::7"], segleft=0)/IPv6ExtHdrFragment(offset=0, m=1, id=0xabcdef)/TCP(sport=40000, dport=443, flags="S", seq=1)
vec["IPV6_EXT_TCP"] = raw(ext6)
vec["IPV6_FRAG_LATER"] = raw(IPv6(src="2001:db8::1", dst="2001:db8::2")/IPv6ExtHdrFragment(offset=185, m=0, id=0xabcdef, nh=17)/Raw(b"\xaa"*16))
vec["IPV6_UDP"] = raw(IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=64)/UDP(sport=5353, dport=5353)/Raw(b"hello v6"))
vec["IPV6_ICMP"] = raw(IPv6(src="fe80::1", dst="ff02::1")/ICMPv6EchoRequest(id=9, seq=1))
vec["IPV4_SCTP"] = raw(IP(src="10.1.0.1", dst="10.2.0.1")/SCTP(sport=2905, dport=2906))
vec["IPV4_FRAG_LATER"] = raw(IP(src="10.1.0.1", dst="10.2.0.1", proto=6, frag=100, flags=0)/Raw(b"\x00"*12))

inner = IP(src="10.1.0.5", dst="10.2.0.9", id=1)/UDP(sport=1111, dport=2222)/Raw(b"x"*13)
esa = SecurityAssociation(ESP, spi=0x1001, crypt_algo="NULL", crypt_key=None, auth_algo="NULL", auth_key=None, tunnel_header=IP(src="192.0.2.1", dst="192.0.2.2"))
vec["ESP_NULL_TUNNEL"] = raw(esa.encrypt(inner, seq_num=7))
esa_u = SecurityAssociation(ESP, spi=0x2002, crypt_algo="NULL", crypt_key=None, auth_algo="NULL", auth_key=None, tunnel_header=IP(src="192.0.2.1", dst="192.0.2.2"), nat_t_header=UDP(sport=4500, dport=4500))
vec["UDP_ENCAP_ESP"] = raw(esa_u.encrypt(inner, seq_num=1))

key = bytes(range(32))
ah4 = SecurityAssociation(AH, spi=0x3003, auth_algo="SHA2-256-128", auth_key=key)
pkt4 = IP(src="192.0.2.1", dst="192.0.2.2", tos=0x2e, ttl=61, id=99, flags="DF", options=[IPOption_Router_Alert(), IPOption_RR(routers=["10.9.9.9"], pointer=8), IPOption_Security(), IPOption_NOP(), IPOption_NOP(), IPOption_NOP()])/inner
ah4p = ah4.encrypt(pkt4, seq_num=5)
vec["AH4_OPTIONS"] = raw(ah4p)
z = IP(raw(ah4p)); z = zero_mutable_fields(z, sending=False)
vec["AH4_OPTIONS_ZEROED"] = raw(z)[: (z.ihl or 5) * 4]

pkt4b = IP(src="192.0.2.1", dst="192.0.2.2", tos=0x01, ttl=200, id=100, options=[IPOption_LSRR(routers=["10.0.0.9", "10.0.0.10"], pointer=4), IPOption_Timestamp(flg=0, pointer=5, timestamp=[0x11223344], length=8), IPOption(b"\x9e\x04\xab\xcd"), IPOption_Router_Alert(), IPOption_NOP()])/inner
ah4pb = ah4.encrypt(pkt4b, seq_num=6)
vec["AH4_ROUTED"] = raw(ah4pb)
zb = zero_mutable_fields(IP(raw(ah4pb)), sending=False)
vec["AH4_ROUTED_ZEROED"] = raw(zb)[: zb.ihl * 4]

ah6 = SecurityAssociation(AH, spi=0x3006, auth_algo="SHA2-256-128", auth_key=key)
pkt6 = IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0xb9, fl=0x54321, hlim=9)/IPv6ExtHdrHopByHop(options=[RouterAlert(), Jumbo(jumboplen=0x55aa55aa)])/IPv6ExtHdrDestOpt(options=[HAO(hoa="2001:db8::99"), HBHOptUnknown(otype=0x3e, optdata=b"\xde\xad\xbe\xef"), PadN(optdata=b"\x00\x00\x00\x00")])/IPv6ExtHdrRouting(addresses=["2001:db8::7"], segleft=0)/UDP(sport=7, dport=7)/Raw(b"ah6")
ah6p = ah6.encrypt(pkt6, seq_num=3)
vec["AH6_EXT"] = raw(ah6p)
z6 = zero_mutable_fields(IPv6(raw(ah6p)), sending=False)
vec["AH6_EXT_ZEROED"] = raw(z6)

for k, v in vec.items():
    print(k); print(arr(k, v)); print()


# ARP, ICMP, ICMPv6 and neighbour discovery (arp.rs, icmp.rs, icmpv6.rs, ndisc.rs).
nd = {}
nd["ARP_REQUEST"] = raw(ARP(op=1, hwsrc="02:00:00:00:00:0a", psrc="192.0.2.1", hwdst="00:00:00:00:00:00", pdst="192.0.2.2"))
nd["ARP_REPLY"] = raw(ARP(op=2, hwsrc="02:00:00:00:00:0b", psrc="192.0.2.2", hwdst="02:00:00:00:00:0a", pdst="192.0.2.1"))
nd["ICMP_ECHO_REQUEST"] = raw(ICMP(type=8, id=0x1234, seq=7)/Raw(b"espo ping"))
esp4 = IP(src="192.0.2.1", dst="198.51.100.2", id=5, flags="DF", ttl=64, proto=50)/Raw(bytes.fromhex("0000a101000000070000000000000007") + b"\x11"*1400)
nd["ICMP_FRAG_NEEDED"] = raw(IP(src="198.51.100.254", dst="192.0.2.1", ttl=64, id=0)/ICMP(type=3, code=4, nexthopmtu=1300)/Raw(raw(esp4)[:36]))
nd["ICMPV6_ECHO_REQUEST"] = raw(IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=64)/ICMPv6EchoRequest(id=9, seq=1, data=b"espo"))
esp6 = IPv6(src="2001:db8::1", dst="2001:db8:1::2", hlim=64, nh=50)/Raw(bytes.fromhex("0000a102000000090000000000000009") + b"\x22"*1400)
nd["ICMPV6_PTB"] = raw(IPv6(src="2001:db8::fe", dst="2001:db8::1", hlim=64)/ICMPv6PacketTooBig(mtu=1280)/Raw(raw(esp6)[:56]))
nd["ICMPV6_NS"] = raw(IPv6(src="2001:db8::1", dst="ff02::1:ff00:2", hlim=255)/ICMPv6ND_NS(tgt="2001:db8::2")/ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:0a"))
nd["ICMPV6_NS_DAD"] = raw(IPv6(src="::", dst="ff02::1:ff00:2", hlim=255)/ICMPv6ND_NS(tgt="2001:db8::2"))
nd["ICMPV6_NA"] = raw(IPv6(src="2001:db8::2", dst="2001:db8::1", hlim=255)/ICMPv6ND_NA(tgt="2001:db8::2", R=0, S=1, O=1)/ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:0b"))
nd["ICMPV6_NS_MTU_OPT"] = raw(IPv6(src="2001:db8::1", dst="ff02::1:ff00:2", hlim=255)/ICMPv6ND_NS(tgt="2001:db8::2")/ICMPv6NDOptMTU(mtu=1500)/ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:0a"))
for k, v in nd.items():
    print(k); print(arr(k, v)); print()
