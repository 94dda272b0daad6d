// espo_core_pkg: types and rules of the ESP core shared by its modules. Every contract
// value (status codes, algorithm ids, SA_ENTRY layout, limits) comes from espo_pkg.
package espo_core_pkg;
  import espo_pkg::*;
  // Functions below take whole SA structures and use some of their fields.
  /* verilator lint_off UNUSEDSIGNAL */

  localparam int BEAT_BYTES = 64;                       // 512-bit stream
  localparam int MAX_FRAME = int'(CAP_MAX_FRAME_RESET);
  /* verilator lint_off UNUSEDPARAM */
  localparam int FRAME_WORDS = (MAX_FRAME + BEAT_BYTES - 1) / BEAT_BYTES;
  /* verilator lint_on UNUSEDPARAM */
  localparam int LEN_W = $clog2(MAX_FRAME + 1) + 1;      // frame and packet lengths

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
    return esn ? 64'hFFFF_FFFF_FFFF_FFFF : 64'h0000_0000_FFFF_FFFF;
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
    if ({1'b0, tl} >= w - 1) begin
      hi = ({1'b0, seq_low} >= {1'b0, tl} - (w - 1)) ? th : th + 1;
    end else begin
      low_edge = tl - 32'(w - 1);
      hi = (seq_low >= low_edge) ? th - 1 : th;
    end
    return {hi, seq_low};
  endfunction

  // Whether seq may be accepted: not 0, not left of the window, not already seen (word is
  // the ring word for seq's block).
  function automatic logic replay_ok(input logic [63:0] top, input logic [31:0] window,
                                     input logic [63:0] seq, input replay_word_t word);
    if (seq == 0) return 1'b0;
    if (window == 0 || seq > top) return 1'b1;
    if (top - seq >= {32'h0, window}) return 1'b0;
    return !(word.tag == seq[63:6] && word.bits[seq[5:0]]);
  endfunction

  function automatic replay_word_t replay_mark(input replay_word_t word, input logic [63:0] seq);
    replay_word_t w;
    w = (word.tag == seq[63:6]) ? word : '{tag: seq[63:6], bits: '0};
    w.bits[seq[5:0]] = 1'b1;
    return w;
  endfunction

  // Counts one packet of inner_bytes on an SA (§11); returns the new state and the events.
  function automatic sa_row_t account(input sa_row_t s, input sa_entry_t e,
                                      input logic [LEN_W-1:0] inner_bytes,
                                      output logic [1:0] soft_bits, output logic [1:0] hard_bits,
                                      output logic ev_soft, output logic ev_hard);
    sa_row_t n;
    n = s;
    n.packets = s.packets + 1;
    n.bytes = s.bytes + 64'(inner_bytes);
    soft_bits = {e.soft_packets != 0 && n.packets >= e.soft_packets,
            e.soft_bytes != 0 && n.bytes >= e.soft_bytes};
    hard_bits = {e.hard_packets != 0 && n.packets >= e.hard_packets,
            e.hard_bytes != 0 && n.bytes >= e.hard_bytes};
    ev_soft = soft_bits != 0 && !s.soft_expired;
    ev_hard = hard_bits != 0 && !s.hard_expired;
    if (ev_soft) n.soft_expired = 1'b1;
    if (ev_hard) n.hard_expired = 1'b1;
    return n;
  endfunction

  // Byte i of a little-endian vector.
  function automatic logic [7:0] lebyte(input logic [1023:0] v, input int unsigned i);
    return v[8*i +: 8];
  endfunction

  // The AES key of an SA entry, big-endian, AES-128 keys in the upper half.
  function automatic logic [255:0] key_be(input sa_entry_t e);
    logic [255:0] k;
    for (int i = 0; i < 32; i++) k[255 - 8*i -: 8] = e.key[8*i +: 8];
    return k;
  endfunction

  // RFC 6040 §4.2: the inner ECN codepoint after decapsulation; drop for Not-ECT under CE.
  function automatic logic [1:0] decap_ecn(input logic [1:0] outer, input logic [1:0] inner,
                                           output logic drop);
    drop = 1'b0;
    if (inner == 2'b00) begin
      drop = (outer == 2'b11);
      return 2'b00;
    end
    if (inner == 2'b11 || outer == 2'b11) return 2'b11;
    if (outer == 2'b01) return 2'b01;
    return inner;
  endfunction
  /* verilator lint_on UNUSEDSIGNAL */
endpackage
