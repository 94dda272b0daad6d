// espo_rx_classify: receive classification of a frame (datasheet §7.6) from its first 128
// bytes: outer IPv4/IPv6 checks, fragments, ESP or ESP-in-UDP (RFC 3948) with NAT
// keepalives and IKE's non-ESP marker as bypass, and the ESP header fields. Combinational.
// Every field is read at a fixed offset of one of three windows (the IP header, the L4
// header, the ESP header), so the only variable selects are the two window shifts.
module espo_rx_classify #(
  parameter int LEN_W = $clog2(espo_pkg::CAP_MAX_FRAME_RESET + 1) + 1
) (
  input  logic [1023:0]    head,       // frame bytes 0..127, little-endian
  input  logic [LEN_W-1:0] frame_len,
  input  logic [15:0]      natt_port,
  output logic [1:0]       cls,        // espo_core_pkg::rx_class_e
  output logic [7:0]       bad_counter,// espo_pkg COUNTER_* of a MALFORMED frame
  output logic             outer_ipv6,
  output logic [127:0]     dst,        // lookup key: IPv4 addresses fill bytes 0..3
  output logic [7:0]       outer_tos,
  output logic             udp,
  output logic [LEN_W-1:0] esp_at,     // ESP header offset in the frame
  output logic [LEN_W-1:0] esp_len,    // ESP header to the end of the outer IP packet
  output logic [31:0]      spi,
  output logic [31:0]      seq_low,
  output logic [63:0]      iv
);
  // Byte i and big-endian 16/32-bit fields of a little-endian window (constant i).
  function automatic logic [7:0] b8(input logic [1023:0] w, input int i);
    b8 = w[8*i +: 8];
  endfunction
  function automatic logic [15:0] be16(input logic [1023:0] w, input int i);
    be16 = {w[8*i +: 8], w[8*(i+1) +: 8]};
  endfunction
  function automatic logic [31:0] be32(input logic [1023:0] w, input int i);
    be32 = {be16(w, i), be16(w, i + 2)};
  endfunction

  logic [1023:0] ip, l4, esp;
  // 18-bit arithmetic: lengths from the frame (16-bit fields plus offsets) never wrap.
  logic [15:0]   ethertype;
  logic [17:0]   ip_len, ihl, total, l4_at, l4_end, e_at, ulen, plen;
  logic [31:0]   acc;
  logic          is_v4, is_v6, v4_ok, v6_ok, v4_frag, esp_proto, udp_proto, natt, keepalive, esp_ok;

  assign ip = head >> 112;                        // from the outer IP header (offset 14)
  assign ethertype = be16(head, 12);
  assign ip_len = (frame_len > LEN_W'(14)) ? 18'(frame_len) - 18'd14 : 18'h0;
  assign is_v4 = frame_len >= LEN_W'(14) && ethertype == 16'h0800;
  assign is_v6 = frame_len >= LEN_W'(14) && ethertype == 16'h86dd;

  always_comb begin
    ihl = {12'h0, ip[3:0], 2'b00};
    acc = '0;
    for (int w = 0; w < 30; w++) if (18'(2 * w) < ihl) acc = acc + {16'h0, be16(ip, 2 * w)};
  end
  assign v4_ok = ip_len >= 18'd4 && ip[7:4] == 4'd4 && ihl >= 18'd20 && 18'(be16(ip, 2)) >= ihl
                 && 18'(be16(ip, 2)) <= ip_len && espo_core_pkg::fold16(acc) == 16'hffff;
  assign v4_frag = (be16(ip, 6) & 16'h3fff) != 0;
  assign v6_ok = ip_len >= 18'd6 && ip[7:4] == 4'd6 && 18'(be16(ip, 4)) + 18'd40 <= ip_len;

  assign total = is_v6 ? 18'(be16(ip, 4)) + 18'd40 : 18'(be16(ip, 2));
  assign l4_at = is_v6 ? 18'd40 : ihl;
  assign l4_end = total;
  assign l4 = ip >> (8 * l4_at);
  // Fragments (MF or an offset) are bypass: reassembly is software's.
  assign esp_proto = (is_v6 && b8(ip, 6) == 8'd50) || (is_v4 && !v4_frag && b8(ip, 9) == 8'd50);
  assign udp_proto = (is_v6 && b8(ip, 6) == 8'd17) || (is_v4 && !v4_frag && b8(ip, 9) == 8'd17);
  assign ulen = 18'(be16(l4, 4));
  assign plen = l4_end - l4_at - 18'd8;
  assign natt = be16(l4, 2) == natt_port;
  // RFC 3948: a NAT keepalive is one 0xFF byte; IKE starts with a zero non-ESP marker.
  assign keepalive = plen == 0 || (plen == 18'd1 && b8(l4, 8) == 8'hff)
                     || (plen >= 18'd4 && be32(l4, 8) == 0);
  assign e_at = udp_proto ? l4_at + 18'd8 : l4_at;
  assign esp = udp_proto ? (l4 >> 64) : l4;
  assign esp_ok = ip_len >= e_at + 18'd8 && e_at + 18'd8 <= l4_end && be32(esp, 0) != 0;

  always_comb begin
    cls = espo_core_pkg::RX_BYPASS;
    bad_counter = '0;
    udp = 1'b0;
    if (frame_len < LEN_W'(14)) begin
      cls = espo_core_pkg::RX_MALFORMED;
      bad_counter = espo_pkg::COUNTER_RX_RUNT;
    end else if ((is_v4 && !v4_ok) || (is_v6 && !v6_ok)) begin
      cls = espo_core_pkg::RX_MALFORMED;
      bad_counter = espo_pkg::COUNTER_RX_BAD_OUTER_IP;
    end else if (udp_proto) begin
      if (ip_len < l4_at + 18'd6) begin
        cls = espo_core_pkg::RX_MALFORMED;
        bad_counter = espo_pkg::COUNTER_RX_BAD_ESP;
      end else if (!natt) cls = espo_core_pkg::RX_BYPASS;
      else if (ulen < 18'd8 || l4_at + ulen > l4_end) begin
        cls = espo_core_pkg::RX_MALFORMED;
        bad_counter = espo_pkg::COUNTER_RX_BAD_ESP;
      end else if (keepalive) cls = espo_core_pkg::RX_BYPASS;
      else begin
        udp = 1'b1;
        cls = espo_core_pkg::RX_ESP;
      end
    end else if (esp_proto) cls = espo_core_pkg::RX_ESP;
    if (cls == espo_core_pkg::RX_ESP && !esp_ok) begin
      cls = espo_core_pkg::RX_MALFORMED;
      bad_counter = espo_pkg::COUNTER_RX_BAD_ESP;
    end
  end

  assign outer_ipv6 = is_v6;
  assign dst = is_v6 ? ip[8*24 +: 128] : {96'h0, ip[8*16 +: 32]};
  assign outer_tos = is_v6 ? 8'(be16(ip, 0) >> 4) : b8(ip, 1);
  assign spi = be32(esp, 0);
  assign seq_low = be32(esp, 4);
  assign iv = {be32(esp, 8), be32(esp, 12)};
  assign esp_at = LEN_W'(18'd14 + e_at);
  assign esp_len = LEN_W'(l4_end - e_at);
endmodule
