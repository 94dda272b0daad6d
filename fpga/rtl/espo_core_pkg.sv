// espo_core_pkg: types and rules of the ESP core shared by its modules. Every contract
// value (status codes, algorithm ids, SA_ENTRY layout, limits) comes from espo_pkg.
package espo_core_pkg;
  /* verilator lint_off UNUSEDSIGNAL */

  typedef enum logic [1:0] {
    RX_BYPASS    = 2'd0,
    RX_MALFORMED = 2'd1,
    RX_ESP       = 2'd2
  } rx_class_e;

  // Sideband of an input packet (first beat; AXI-Stream TUSER).
  typedef struct packed {
    logic        outbound;  // 1: encapsulate on sa_index; 0: received frame to decapsulate
    logic        bypass;    // outbound only: send as posted
    logic [31:0] sa_index;
  } sideband_t;

  // Result of a packet (AXI-Stream TUSER of every output beat): the fields of the datasheet's
  // TX/RX completions (§7.4, §7.5) and the SA events the packet raised (§11).
  typedef struct packed {
    logic [7:0]  status;
    logic [63:0] seq;
    logic [31:0] sa_index;
    logic [31:0] spi;
    logic        transformed;   // output is the encapsulated / decapsulated packet
    logic        inner_ipv6;
    logic        udp_encap;
    logic        ev_soft;       // LIFETIME_SOFT raised; aux in soft_aux
    logic        ev_hard;       // LIFETIME_HARD raised; aux in hard_aux
    logic        ev_seq_exhausted;
    logic [1:0]  soft_aux;
    logic [1:0]  hard_aux;
  } result_t;

  // Mutable per-SA state (the scalar part of SA_STATE).
  typedef struct packed {
    logic        valid;
    logic        soft_expired;
    logic        hard_expired;
    logic        seq_exhausted;
    logic [63:0] seq;           // outbound: last used; inbound: highest authenticated
    logic [63:0] bytes;
    logic [63:0] packets;
    logic [31:0] replay_drops;
    logic [31:0] icv_failures;
  } sa_row_t;

  // One 64-packet word of an inbound replay window, tagged with the block (seq >> 6) it
  // holds, so advancing the window never needs to clear words (RFC 6479 ring).
  typedef struct packed {
    logic [57:0] tag;
    logic [63:0] bits;
  } replay_word_t;

  function automatic logic [63:0] seq_limit(input logic esn);
    seq_limit = esn ? 64'hFFFF_FFFF_FFFF_FFFF : 64'h0000_0000_FFFF_FFFF;
  endfunction

  // RFC 4303 Appendix A.2: the 64-bit sequence number of seq_low given the window top and
  // size; a disabled window infers over half the space.
  function automatic logic [63:0] infer_esn(input logic [63:0] top, input logic [31:0] window,
                                            input logic [31:0] seq_low);
    logic [32:0] w;
    logic [31:0] tl, th, hi, low_edge;
    w = (window == 0) ? 33'h0_8000_0000 : {1'b0, window};
    tl = top[31:0];
    th = top[63:32];
    low_edge = tl - w[31:0] + 32'd1;
    if ({1'b0, tl} >= w - 33'd1) hi = ({1'b0, seq_low} >= {1'b0, tl} - (w - 33'd1)) ? th : th + 32'd1;
    else hi = (seq_low >= low_edge) ? th - 32'd1 : th;
    infer_esn = {hi, seq_low};
  endfunction

  // A refused seq is stale (left of the window) rather than a replay (§7.8).
  function automatic logic replay_stale(input logic [63:0] top, input logic [31:0] window,
                                        input logic [63:0] seq);
    replay_stale = seq != 0 && window != 0 && seq <= top && top - seq >= {32'h0, window};
  endfunction

  // The ESN inference of infer_esn wrapped: its high half would lie before the first 2^32
  // subspace or past the last, so no such number was ever sent (stale, §7.8).
  function automatic logic esn_wrapped(input logic [63:0] top, input logic [63:0] seq);
    esn_wrapped = (top[63:32] == 32'h0 && seq[63:32] == 32'hFFFF_FFFF)
                  || (top[63:32] == 32'hFFFF_FFFF && seq[63:32] == 32'h0);
  endfunction

  // Whether seq may be accepted: not 0, not left of the window, not already seen. tag/bits
  // are the ring word (replay_word_t) of seq's block.
  function automatic logic replay_ok(input logic [63:0] top, input logic [31:0] window,
                                     input logic [63:0] seq, input logic [57:0] tag,
                                     input logic [63:0] bits);
    if (seq == 0) replay_ok = 1'b0;
    else if (window == 0 || seq > top) replay_ok = 1'b1;
    else if (top - seq >= {32'h0, window}) replay_ok = 1'b0;
    else replay_ok = !(tag == seq[63:6] && bits[seq[5:0]]);
  endfunction

  // The ring word (replay_word_t) with seq marked as received.
  function automatic logic [121:0] replay_mark(input logic [57:0] tag, input logic [63:0] bits,
                                               input logic [63:0] seq);
    logic [63:0] b;
    b = (tag == seq[63:6]) ? bits : 64'h0;
    b[seq[5:0]] = 1'b1;
    replay_mark = {seq[63:6], b};
  endfunction

  // The AES key of an SA entry's KEY field, big-endian, AES-128 keys in the upper half.
  function automatic logic [255:0] key_be(input logic [255:0] key_le);
    for (int i = 0; i < 32; i++) key_be[255 - 8*i -: 8] = key_le[8*i +: 8];
  endfunction

  // RFC 6040 §4.2: the inner ECN codepoint after decapsulation ...
  function automatic logic [1:0] decap_ecn(input logic [1:0] outer, input logic [1:0] inner);
    if (inner == 2'b00) decap_ecn = 2'b00;
    else if (inner == 2'b11 || outer == 2'b11) decap_ecn = 2'b11;
    else if (outer == 2'b01) decap_ecn = 2'b01;
    else decap_ecn = inner;
  endfunction

  // ... and whether the packet must be dropped instead (Not-ECT under CE).
  function automatic logic decap_ecn_drop(input logic [1:0] outer, input logic [1:0] inner);
    decap_ecn_drop = inner == 2'b00 && outer == 2'b11;
  endfunction

  // One's-complement fold of a 32-bit sum to 16 bits.
  function automatic logic [15:0] fold16(input logic [31:0] acc);
    logic [31:0] a;
    a = acc;
    for (int k = 0; k < 3; k++) a = {16'h0, a[15:0]} + {16'h0, a[31:16]};
    fold16 = a[15:0];
  endfunction
  /* verilator lint_on UNUSEDSIGNAL */
endpackage
