// espo_rx_classify: receive classification of a frame (datasheet §7.6) from its first 128
// bytes: outer IPv4/IPv6 checks, fragments, ESP or ESP-in-UDP (RFC 3948) with NAT
// keepalives and IKE's non-ESP marker as bypass, and the ESP header fields. Combinational.
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

  function automatic logic [7:0] b(input logic [1023:0] h, input int unsigned i);
    b = (i < 128) ? h[8*i +: 8] : 8'h00;
  endfunction
  /* verilator lint_off UNUSEDSIGNAL */
  function automatic logic [3:0] lownib(input logic [7:0] x);
    lownib = x[3:0];
  endfunction
  /* verilator lint_on UNUSEDSIGNAL */
  function automatic logic [15:0] be16(input logic [1023:0] h, input int unsigned i);
    be16 = {b(h, i), b(h, i + 1)};
  endfunction
  function automatic logic [31:0] be32(input logic [1023:0] h, input int unsigned i);
    be32 = {be16(h, i), be16(h, i + 2)};
  endfunction

  always_comb begin
    int unsigned ip_len, ihl, total, l4_at, l4_end, e_at, plen, ulen;
    logic [31:0] acc;
    logic        is_esp_proto, is_udp_proto;
    cls = espo_core_pkg::RX_BYPASS;
    bad_counter = '0;
    outer_ipv6 = 1'b0;
    dst = '0;
    outer_tos = '0;
    udp = 1'b0;
    esp_at = '0;
    esp_len = '0;
    spi = '0;
    seq_low = '0;
    iv = '0;
    ip_len = (32'(frame_len) > 14) ? 32'(frame_len) - 14 : 0;
    ihl = 0; total = 0; l4_at = 0; l4_end = 0; e_at = 0; plen = 0; ulen = 0; acc = '0;
    is_esp_proto = 1'b0;
    is_udp_proto = 1'b0;
    if (32'(frame_len) < 14) begin
      cls = espo_core_pkg::RX_MALFORMED;
      bad_counter = espo_pkg::COUNTER_RX_RUNT;
    end else if (be16(head, 12) == 16'h0800) begin
      ihl = 4 * 32'({24'h0, 4'h0, lownib(b(head, 14))});
      total = 32'(be16(head, 16));
      for (int unsigned w = 0; w < 30; w++) if (2 * w < ihl) acc = acc + 32'(be16(head, 14 + 2 * w));
      for (int k = 0; k < 3; k++) acc = {16'h0, acc[15:0]} + {16'h0, acc[31:16]};
      if (ip_len < 4 || (b(head, 14) >> 4) != 8'd4 || ihl < 20 || total < ihl || total > ip_len
          || acc[15:0] != 16'hffff) begin
        cls = espo_core_pkg::RX_MALFORMED;
        bad_counter = espo_pkg::COUNTER_RX_BAD_OUTER_IP;
      end else begin
        dst = {96'h0, b(head, 33), b(head, 32), b(head, 31), b(head, 30)};
        outer_tos = b(head, 15);
        l4_at = ihl;
        l4_end = total;
        // Fragments (MF or an offset) are bypass: reassembly is software's.
        if ((be16(head, 20) & 16'h3fff) == 0) begin
          is_esp_proto = b(head, 23) == 8'd50;
          is_udp_proto = b(head, 23) == 8'd17;
        end
      end
    end else if (be16(head, 12) == 16'h86dd) begin
      total = 32'(be16(head, 18)) + 40;
      if (ip_len < 6 || (b(head, 14) >> 4) != 8'd6 || total > ip_len) begin
        cls = espo_core_pkg::RX_MALFORMED;
        bad_counter = espo_pkg::COUNTER_RX_BAD_OUTER_IP;
      end else begin
        outer_ipv6 = 1'b1;
        for (int i = 0; i < 16; i++) dst[8*i +: 8] = b(head, 38 + i);
        outer_tos = 8'(be16(head, 14) >> 4);
        l4_at = 40;
        l4_end = total;
        is_esp_proto = b(head, 20) == 8'd50;
        is_udp_proto = b(head, 20) == 8'd17;
      end
    end
    e_at = l4_at;
    if (is_udp_proto) begin
      ulen = 32'(be16(head, 14 + l4_at + 4));
      plen = l4_end - l4_at - 8;
      if (ip_len < l4_at + 6) begin
        cls = espo_core_pkg::RX_MALFORMED;
        bad_counter = espo_pkg::COUNTER_RX_BAD_ESP;
      end else if (be16(head, 14 + l4_at + 2) != natt_port) begin
        cls = espo_core_pkg::RX_BYPASS;
      end else if (ulen < 8 || l4_at + ulen > l4_end) begin
        cls = espo_core_pkg::RX_MALFORMED;
        bad_counter = espo_pkg::COUNTER_RX_BAD_ESP;
      end else if (plen == 0 || (plen == 1 && b(head, 14 + l4_at + 8) == 8'hff)
                   || (plen >= 4 && be32(head, 14 + l4_at + 8) == 0)) begin
        cls = espo_core_pkg::RX_BYPASS;       // NAT keepalive, IKE (non-ESP marker), empty
      end else begin
        udp = 1'b1;
        e_at = l4_at + 8;
        cls = espo_core_pkg::RX_ESP;
      end
    end else if (is_esp_proto) cls = espo_core_pkg::RX_ESP;
    if (cls == espo_core_pkg::RX_ESP) begin
      if (ip_len < e_at + 8 || e_at + 8 > l4_end || be32(head, 14 + e_at) == 0) begin
        cls = espo_core_pkg::RX_MALFORMED;
        bad_counter = espo_pkg::COUNTER_RX_BAD_ESP;
      end else begin
        spi = be32(head, 14 + e_at);
        seq_low = be32(head, 14 + e_at + 4);
        iv = {be32(head, 14 + e_at + 8), be32(head, 14 + e_at + 12)};
        esp_at = LEN_W'(14 + e_at);
        esp_len = LEN_W'(l4_end - e_at);
      end
    end
  end
endmodule
