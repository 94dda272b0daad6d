# Run by swan_pair.sh --exec: the responder reconfigured with other proposals, a second session captured to $SWAN_OUT/reconf.pcap.
set -e
A() { STRONGSWAN_CONF=$SWAN_CONF_A SWANCTL_DIR=$SWAN_DIR_A swanctl "$@" --uri $SWAN_VICI_A; }
B() { STRONGSWAN_CONF=$SWAN_CONF_B SWANCTL_DIR=$SWAN_DIR_B swanctl "$@" --uri $SWAN_VICI_B; }
ip netns exec sw-a dumpcap -q -P -i sw-a0 -f "udp port 500 or udp port 4500" -w $SWAN_OUT/reconf.pcap -a duration:15 > $SWAN_OUT/reconf-dumpcap.txt 2>&1 &
CAP=$!
sleep 2
sed -i 's/^\(\s*\)proposals = .*/\1proposals = chacha20poly1305-prfsha256-ecp256,aes128gcm16-aes256gcm16-prfsha256-prfsha512-x25519-ecp384,aes128-sha256-x25519/' $SWAN_DIR_B/swanctl.conf
sed -i 's/^\(\s*\)esp_proposals = .*/\1esp_proposals = aes128-sha512-sha256,aes256gcm16-aes128gcm16/' $SWAN_DIR_B/swanctl.conf
B --load-conns
A --terminate --ike site || true
sleep 1
A --initiate --child net > $SWAN_OUT/reconf-initiate.txt 2>&1
sleep 1
bash $SWAN_OUT/refresh_keys.sh > $SWAN_OUT/reconf-keys.txt 2>&1 || true
wait $CAP || true
