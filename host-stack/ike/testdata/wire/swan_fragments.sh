# Run by swan_pair.sh --cert --exec: IKE fragmentation forced (400-byte fragments), a second session captured to $SWAN_OUT/frag.pcap.
set -e
A() { STRONGSWAN_CONF=$SWAN_CONF_A SWANCTL_DIR=$SWAN_DIR_A swanctl "$@" --uri $SWAN_VICI_A; }
B() { STRONGSWAN_CONF=$SWAN_CONF_B SWANCTL_DIR=$SWAN_DIR_B swanctl "$@" --uri $SWAN_VICI_B; }
ip netns exec sw-a dumpcap -q -P -i sw-a0 -f "udp port 500 or udp port 4500" -w $SWAN_OUT/frag.pcap -a duration:15 > $SWAN_OUT/frag-dumpcap.txt 2>&1 &
CAP=$!
sleep 2
for c in $SWAN_CONF_A $SWAN_CONF_B; do sed -i 's/^  retransmit_tries = 3/  retransmit_tries = 3\n  fragment_size = 400/' $c; done
for d in $SWAN_DIR_A $SWAN_DIR_B; do sed -i 's/^    version = 2/    version = 2\n    fragmentation = force/' $d/swanctl.conf; done
A --reload-settings; B --reload-settings
A --load-conns; B --load-conns
A --terminate --ike site || true
sleep 1
A --initiate --child net > $SWAN_OUT/frag-initiate.txt 2>&1
sleep 1
bash $SWAN_OUT/refresh_keys.sh > $SWAN_OUT/frag-keys.txt 2>&1 || true
wait $CAP || true
