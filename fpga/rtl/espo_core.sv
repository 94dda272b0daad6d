// espo_core: the ESPO-1 ESP tunnel datapath (datasheet §7.6-§7.8, §8, §11) for AES-GCM-128
// and AES-GCM-256.
//
// Streams: 512-bit AXI-Stream in and out (byte i of a beat in bits [8i+7:8i]); the input
// sideband (s_tuser, sideband_t) names the direction and, outbound, the SA index; every
// output beat carries the packet's result (m_tuser, result_t). Every input packet gives
// exactly one output packet, except frames longer than MAX_FRAME, which are dropped (the
// port drops them, §7.5): the encapsulated or decapsulated packet when the result says so
// (`transformed`), otherwise the input frame unchanged with the refusal or verdict status.
//
// A packet is received whole into the input buffer, classified (RX) or checked (TX) against
// its SA, run through one AES-GCM engine of 16 bytes per cycle (espo_gcm), and released
// from the output buffer only after its ICV has been verified (RX) and every header field
// that depends on the whole packet is known. Register port: see espo_sa_table.
module espo_core #(
  parameter int SA_COUNT = espo_pkg::CAP_SA_TABLE_SIZE_RESET,
  parameter int BUCKETS = 1024
) (
  input  logic         clk,
  input  logic         rst_n,
  input  logic         reg_we,
  input  logic [11:0]  reg_addr,
  input  logic [31:0]  reg_wdata,
  output logic [31:0]  reg_rdata,
  input  logic [15:0]  natt_port,     // CTRL.NATT_PORT
  input  logic         s_tvalid,
  output logic         s_tready,
  input  logic [511:0] s_tdata,
  input  logic [63:0]  s_tkeep,
  input  logic         s_tlast,
  input  espo_core_pkg::sideband_t s_tuser,
  output logic         m_tvalid,
  input  logic         m_tready,
  output logic [511:0] m_tdata,
  output logic [63:0]  m_tkeep,
  output logic         m_tlast,
  output espo_core_pkg::result_t   m_tuser,
  output logic         dropped       // pulse: an oversize frame was dropped (RX_OVERSIZE)
);
  localparam int MAX_FRAME = espo_pkg::CAP_MAX_FRAME_RESET;
  localparam int FRAME_WORDS = (MAX_FRAME + 63) / 64;         // 64-byte beats
  localparam int LEN_W = $clog2(MAX_FRAME + 1) + 1;           // frame and packet lengths
  localparam int IDX_W = $clog2(SA_COUNT);
  localparam int RP_WORDS = 2 ** $clog2(espo_pkg::CAP_REPLAY_WINDOW_MAX_RESET / 64 + 1);
  localparam int RP_W = $clog2(RP_WORDS);
  localparam int BUF_WORDS = FRAME_WORDS + 2;
  localparam int W_W = $clog2(BUF_WORDS);

  typedef enum logic [3:0] {
    S_IDLE, S_RECV, S_DROP, S_LOOK, S_LOOK_WAIT, S_SA_RD, S_SA, S_RP_RD, S_RP, S_ISSUE,
    S_WAIT_TAG, S_FINISH, S_OUT
  } state_e;
  state_e st;

  // ---- SA table ---------------------------------------------------------------------------
  logic                  admin_req, admin_busy, dp_row_we, dp_rp_we, lk_req, lk_done, lk_hit;
  logic [IDX_W-1:0]      idx_q, lk_idx;
  /* verilator lint_off UNUSEDSIGNAL */
  espo_pkg::sa_entry_t             cfg;   // some fields are the register port's
  /* verilator lint_on UNUSEDSIGNAL */
  espo_core_pkg::sa_row_t               row, row_w;
  espo_core_pkg::replay_word_t          rp_q, rp_w;
  logic [IDX_W+RP_W-1:0] rp_addr;

  espo_sa_table #(.SA_COUNT(SA_COUNT), .BUCKETS(BUCKETS)) u_sa (
    .clk, .rst_n, .reg_we, .reg_addr, .reg_wdata, .reg_rdata,
    .dp_idle(st == S_IDLE), .admin_req, .admin_busy,
    .dp_idx(idx_q), .cfg_q(cfg), .row_q(row), .dp_row_we, .dp_row_wdata(row_w),
    .dp_rp_addr(rp_addr), .rp_q, .dp_rp_we, .dp_rp_wdata(rp_w),
    .lk_req, .lk_spi(rx_spi), .lk_dst(rx_dst), .lk_done, .lk_hit, .lk_idx
  );

  // ---- Buffers ----------------------------------------------------------------------------
  logic [511:0] ibuf [BUF_WORDS];
  logic [511:0] obuf [BUF_WORDS];
  logic [W_W-1:0] wr_ptr;
  logic [LEN_W-1:0] flen;
  espo_core_pkg::sideband_t sb;
  logic [1023:0] head;
  assign head = {ibuf[1], ibuf[0]};

  function automatic logic [6:0] keep_count(input logic [63:0] k);
    logic [6:0] n;
    n = '0;
    for (int i = 0; i < 64; i++) n = n + 7'(k[i]);
    keep_count = n;
  endfunction

  // 16 input bytes at byte offset a, little-endian.
  function automatic logic [127:0] in16(input logic [LEN_W-1:0] a);
    logic [W_W-1:0] w;
    logic [1023:0] two;
    w = W_W'(a >> 6);
    two = {ibuf[w + 1'b1], ibuf[w]};
    in16 = 128'(two >> (8 * a[5:0]));
  endfunction

  // ---- RX classification and TX inner-header checks (combinational on the head) ----------
  logic [1:0]       rx_cls;
  /* verilator lint_off UNUSEDSIGNAL */
  logic [7:0]       rx_bad;       // STATS counter of a malformed frame (the card's counters)
  logic             rx_v6;
  logic [15:0]      tag_user;
  logic [7:0]       rx_tos;       // DSCP unused: decapsulation keeps the inner DSCP
  /* verilator lint_on UNUSEDSIGNAL */
  logic             rx_udp;
  logic [127:0]     rx_dst;
  logic [LEN_W-1:0] rx_esp_at, rx_esp_len;
  logic [31:0]      rx_spi, rx_seq_low;
  logic [63:0]      rx_iv;
  espo_rx_classify #(.LEN_W(LEN_W)) u_cls (
    .head, .frame_len(flen), .natt_port, .cls(rx_cls), .bad_counter(rx_bad),
    .outer_ipv6(rx_v6), .dst(rx_dst), .outer_tos(rx_tos), .udp(rx_udp), .esp_at(rx_esp_at),
    .esp_len(rx_esp_len), .spi(rx_spi), .seq_low(rx_seq_low), .iv(rx_iv)
  );

  logic             tx_ok, tx_v6, tx_df;
  logic [7:0]       tx_tos;
  logic [LEN_W-1:0] tx_inner_len;
  always_comb begin
    int unsigned avail, ihl, tl;
    avail = (32'(flen) > 14) ? 32'(flen) - 14 : 0;
    tl = 0;
    ihl = 4 * 32'({28'h0, head[8*14 +: 4]});
    tx_v6 = head[8*14 + 4 +: 4] == 4'd6;
    tx_ok = 1'b0;
    tx_tos = '0;
    tx_df = 1'b1;
    tx_inner_len = '0;
    if (head[8*14 + 4 +: 4] == 4'd4) begin
      tl = 32'({head[8*16 +: 8], head[8*17 +: 8]});
      tx_ok = avail >= 4 && ihl >= 20 && tl >= ihl && tl <= avail
              && {head[8*12 +: 8], head[8*13 +: 8]} == 16'h0800;
      tx_tos = head[8*15 +: 8];
      tx_df = head[8*20 + 6];
      tx_inner_len = LEN_W'(tl);
    end else if (tx_v6) begin
      tl = 32'({head[8*18 +: 8], head[8*19 +: 8]}) + 40;
      tx_ok = avail >= 6 && tl <= avail && {head[8*12 +: 8], head[8*13 +: 8]} == 16'h86dd;
      tx_tos = 8'({head[8*14 +: 8], head[8*15 +: 8]} >> 4);
      tx_inner_len = LEN_W'(tl);
    end
    if (32'(flen) < 14) tx_ok = 1'b0;
  end

  // ---- Job registers ----------------------------------------------------------------------
  espo_core_pkg::result_t          res;
  logic             pass;          // output is the input frame
  logic             is_tx;
  logic [LEN_W-1:0] text_off, text_len, inner_len, out_len, ha, icv_at;
  logic [4:0]       pad;
  logic [7:0]       nh;
  logic [W_W+1:0]   nblk, slot;
  logic [255:0]     key;
  logic             is256, esn;
  logic [31:0]      salt;
  logic [63:0]      iv, seq;
  logic [1023:0]    hdr;
  logic [31:0]      udp_static;
  logic [1:0]       outer_tos;     // its ECN field
  logic             outer_v6_udp;

  // ---- TX header (§7.7 and the software engine's rules) -------------------------------------
  logic [1023:0]    tx_hdr;
  logic [LEN_W-1:0] tx_ha, tx_out_len, tx_pt_len;
  logic [4:0]       tx_pad;
  logic [31:0]      tx_udp_static;
  logic [63:0]      tx_seq;
  always_comb begin
    logic [15:0] l4_len, udp_len, total;
    logic [31:0] acc;
    int unsigned ip_at, l4_at, esp;
    tx_seq = row.seq + 1;
    tx_pad = 5'((16 - ((32'(tx_inner_len) + 2) % 16)) % 16);
    tx_pt_len = tx_inner_len + LEN_W'(tx_pad) + 2;
    udp_len = 16'(8 + 16 + 32'(tx_pt_len) + 16);
    l4_len = cfg.udp_encap ? udp_len : 16'(16 + 32'(tx_pt_len) + 16);
    ip_at = 14;
    l4_at = cfg.outer_ipv6 ? 54 : 34;
    esp = cfg.udp_encap ? l4_at + 8 : l4_at;
    tx_ha = LEN_W'(esp + 16);
    tx_out_len = LEN_W'(l4_at + 32'(l4_len));
    tx_hdr = '0;
    tx_hdr[0 +: 96] = head[0 +: 96];
    total = 16'(20 + 32'(l4_len));
    if (cfg.outer_ipv6) begin
      tx_hdr[8*12 +: 16] = {8'hdd, 8'h86};
      tx_hdr[8*14 +: 8] = {4'h6, tx_tos[7:4]};
      tx_hdr[8*15 +: 8] = {tx_tos[3:0], 4'h0};
      tx_hdr[8*18 +: 8] = l4_len[15:8];
      tx_hdr[8*19 +: 8] = l4_len[7:0];
      tx_hdr[8*20 +: 8] = cfg.udp_encap ? 8'd17 : 8'd50;
      tx_hdr[8*21 +: 8] = (cfg.ttl == 0) ? 8'd64 : cfg.ttl;
      tx_hdr[8*22 +: 128] = cfg.src_addr;
      tx_hdr[8*38 +: 128] = cfg.dst_addr;
    end else begin
      tx_hdr[8*12 +: 16] = {8'h00, 8'h08};
      tx_hdr[8*14 +: 8] = 8'h45;
      tx_hdr[8*15 +: 8] = tx_tos;
      tx_hdr[8*16 +: 8] = total[15:8];
      tx_hdr[8*17 +: 8] = total[7:0];
      tx_hdr[8*18 +: 8] = tx_seq[15:8];           // identification: low 16 bits of seq
      tx_hdr[8*19 +: 8] = tx_seq[7:0];
      // DF per the SA's DF_MODE (§4.3): set, clear, or copied (set for an IPv6 inner packet).
      if (8'(cfg.df_mode) == espo_pkg::DF_SET) tx_hdr[8*20 +: 8] = 8'h40;
      else if (8'(cfg.df_mode) == espo_pkg::DF_CLEAR) tx_hdr[8*20 +: 8] = 8'h00;
      else tx_hdr[8*20 +: 8] = (tx_v6 || tx_df) ? 8'h40 : 8'h00;
      tx_hdr[8*22 +: 8] = (cfg.ttl == 0) ? 8'd64 : cfg.ttl;
      tx_hdr[8*23 +: 8] = cfg.udp_encap ? 8'd17 : 8'd50;
      tx_hdr[8*26 +: 32] = cfg.src_addr[31:0];
      tx_hdr[8*30 +: 32] = cfg.dst_addr[31:0];
      acc = '0;
      for (int w = 0; w < 10; w++) acc = acc + {16'h0, tx_hdr[8*(ip_at + 2*w) +: 8], tx_hdr[8*(ip_at + 2*w + 1) +: 8]};
      for (int k = 0; k < 3; k++) acc = {16'h0, acc[15:0]} + {16'h0, acc[31:16]};
      tx_hdr[8*24 +: 8] = ~acc[15:8];
      tx_hdr[8*25 +: 8] = ~acc[7:0];
    end
    if (cfg.udp_encap) begin
      tx_hdr[8*l4_at +: 8] = cfg.udp_src_port[15:8];
      tx_hdr[8*(l4_at+1) +: 8] = cfg.udp_src_port[7:0];
      tx_hdr[8*(l4_at+2) +: 8] = cfg.udp_dst_port[15:8];
      tx_hdr[8*(l4_at+3) +: 8] = cfg.udp_dst_port[7:0];
      tx_hdr[8*(l4_at+4) +: 8] = udp_len[15:8];
      tx_hdr[8*(l4_at+5) +: 8] = udp_len[7:0];
    end
    for (int i = 0; i < 4; i++) begin
      tx_hdr[8*(esp + i) +: 8] = cfg.spi[31 - 8*i -: 8];
      tx_hdr[8*(esp + 4 + i) +: 8] = tx_seq[31 - 8*i -: 8];
    end
    for (int i = 0; i < 8; i++) tx_hdr[8*(esp + 8 + i) +: 8] = tx_seq[63 - 8*i -: 8];
    // IPv6 UDP checksum (RFC 8200 §8.1): pseudo-header and everything up to the ciphertext.
    acc = 32'(udp_len) + 32'd17;
    for (int w = 0; w < 16; w++) acc = acc + {16'h0, tx_hdr[8*(22 + 2*w) +: 8], tx_hdr[8*(23 + 2*w) +: 8]};
    for (int w = 0; w < 12; w++) acc = acc + {16'h0, tx_hdr[8*(54 + 2*w) +: 8], tx_hdr[8*(55 + 2*w) +: 8]};
    tx_udp_static = acc;
  end

  // ---- GCM engine -------------------------------------------------------------------------
  logic         g_valid, g_has_aad, g_last;
  logic [1:0]   g_kind;
  logic [127:0] g_ctr, g_data, g_lenblk;
  logic [4:0]   g_vbytes;
  logic [15:0]  g_user;
  logic         t_valid, tag_valid;
  logic [127:0] t_text, tag;
  logic [4:0]   t_vbytes;
  logic [15:0]  t_user;

  espo_gcm #(.USER_W(16)) u_gcm (
    .clk, .rst_n, .in_valid(g_valid), .in_kind(g_kind), .in_ctr(g_ctr), .in_key(key),
    .in_is256(is256), .in_data(g_data), .in_has_aad(g_has_aad), .in_vbytes(g_vbytes),
    .in_decrypt(!is_tx), .in_last(g_last), .in_lenblk(g_lenblk), .in_user(g_user),
    .out_text_valid(t_valid), .out_text(t_text), .out_text_vbytes(t_vbytes),
    .out_text_user(t_user), .out_tag_valid(tag_valid), .out_tag(tag), .out_tag_user(tag_user)
  );

  always_comb begin
    logic [W_W+1:0] j;
    logic [LEN_W-1:0] base;
    logic [127:0] raw;
    int unsigned p, q;
    j = slot - 2;
    p = 0;
    q = 0;
    g_valid = st == S_ISSUE;
    g_kind = (slot == 0) ? espo_gcm_pkg::GCM_H : (slot == 1) ? espo_gcm_pkg::GCM_J0 : espo_gcm_pkg::GCM_TEXT;
    g_ctr = (slot == 0) ? '0 : {salt, iv, 32'(slot)};
    g_has_aad = slot == 1;
    g_last = slot == nblk + 1;
    g_lenblk = {64'(esn ? 96 : 64), 64'(text_len) << 3};
    g_user = 16'(j);
    g_vbytes = 5'd16;
    base = text_off + LEN_W'(j) * 16;
    raw = in16(base);
    if (is_tx) begin
      for (int k = 0; k < 16; k++) begin
        p = 16 * 32'(j) + k;
        if (p >= 32'(inner_len)) begin
          q = p - 32'(inner_len);
          raw[8*k +: 8] = (q < 32'(pad)) ? 8'(q + 1) : (q == 32'(pad)) ? 8'(pad) : nh;
        end
      end
    end else if (32'(text_len) - 16 * 32'(j) < 16) begin
      g_vbytes = 5'(32'(text_len) - 16 * 32'(j));
    end
    g_data = (slot == 1) ? (esn ? {res.spi, seq[63:32], seq[31:0], 32'h0} : {res.spi, seq[31:0], 64'h0})
                         : espo_crypto_pkg::keep_bytes(espo_crypto_pkg::le2be128(raw), g_vbytes);
  end

  // ---- Consumer of the engine's text: output buffer, trailer and inner-header checks -------
  logic [127:0] pblk [4];        // plaintext blocks 0..3 (the inner header), big-endian
  logic [8:0]   run;             // padding run (1, 2, 3, ...) ending at the latest byte
  logic [8:0]   run_end;         // run ending at the byte before the pad-length byte
  logic [7:0]   pt_pad, pt_nh;
  logic [31:0]  udp_acc;

  logic [8:0]  run_next, run_at;
  logic [31:0] udp_next;
  always_comb begin
    logic [7:0] by;
    by = '0;
    run_next = run;
    run_at = run;
    for (int k = 0; k < 16; k++) if (k < 32'(t_vbytes)) begin
      by = t_text[127 - 8*k -: 8];
      run_next = ({1'b0, by} == run_next + 1) ? {1'b0, by} : (by == 8'd1) ? 9'd1 : 9'd0;
      if (k + 3 == 32'(t_vbytes)) run_at = run_next;
    end
    udp_next = udp_acc;
    for (int w = 0; w < 8; w++) udp_next = udp_next + {16'h0, t_text[127 - 16*w -: 16]};
  end

  // The ICV of an encapsulated packet; an inner header whose ECN field decapsulation changed.
  logic         fin_icv_we, fin_blk0_we;
  always_ff @(posedge clk) begin
    if (st == S_LOOK) begin
      run <= '0;
      udp_acc <= '0;
    end
    if (t_valid) begin
      obuf[W_W'(t_user >> 2)][128 * t_user[1:0] +: 128] <= espo_crypto_pkg::be2le128(t_text);
      if (t_user < 4) pblk[t_user[1:0]] <= t_text;
      run <= run_next;
      if (W_W'(t_user) == W_W'(nblk - 1'b1)) begin
        run_end <= run_at;
        pt_pad <= t_text[127 - 8*(32'(t_vbytes) - 2) -: 8];
        pt_nh <= t_text[127 - 8*(32'(t_vbytes) - 1) -: 8];
      end
      udp_acc <= udp_next;
    end
    if (fin_icv_we) obuf[W_W'(nblk >> 2)][128 * nblk[1:0] +: 128] <= espo_crypto_pkg::be2le128(tag);
    if (fin_blk0_we) obuf[0][127:0] <= espo_crypto_pkg::be2le128(blk0_patched);
  end

  // ---- RX verdict after the tag -------------------------------------------------------------
  logic             icv_ok, trailer_ok, inner_ok, inner_v6, ecn_drop, ecn_change;
  logic [LEN_W-1:0] body_len, rx_inner_len;
  logic [1:0]       new_ecn;
  logic [127:0]     blk0_patched;
  /* verilator lint_off UNUSEDSIGNAL */
  always_comb begin
    int unsigned ihl, tl;
    logic [31:0] acc;
    logic [7:0] b0, tos;
    tl = 0;
    acc = '0;
    icv_ok = tag == espo_crypto_pkg::le2be128(in16(icv_at));
    body_len = text_len - LEN_W'(pt_pad) - 2;
    trailer_ok = (32'(pt_pad) + 2 <= 32'(text_len)) && (pt_pad == 0 || run_end == {1'b0, pt_pad})
                 && (pt_nh == 8'd4 || pt_nh == 8'd41);
    b0 = pblk[0][127:120];
    ihl = 4 * 32'({28'h0, b0[3:0]});
    inner_v6 = b0[7:4] == 4'd6;
    rx_inner_len = '0;
    inner_ok = 1'b0;
    tos = pblk[0][119:112];
    if (b0[7:4] == 4'd4) begin
      tl = 32'(pblk[0][111:96]);
      inner_ok = ihl >= 20 && tl >= ihl && tl <= 32'(body_len) && pt_nh == 8'd4;
      rx_inner_len = LEN_W'(tl);
    end else if (inner_v6) begin
      tl = 32'(pblk[0][95:80]) + 40;
      inner_ok = tl <= 32'(body_len) && pt_nh == 8'd41;
      rx_inner_len = LEN_W'(tl);
      tos = pblk[0][123:116];
    end
    new_ecn = espo_core_pkg::decap_ecn(outer_tos, tos[1:0]);
    ecn_drop = espo_core_pkg::decap_ecn_drop(outer_tos, tos[1:0]);
    ecn_change = new_ecn != tos[1:0];
    blk0_patched = pblk[0];
    if (inner_v6) blk0_patched[117:116] = new_ecn;
    else begin
      blk0_patched[113:112] = new_ecn;
      blk0_patched[47:32] = '0;
      acc = '0;
      for (int w = 0; w < 30; w++)
        if (2 * w < ihl) acc = acc + {16'h0, (w < 8) ? blk0_patched[127 - 16*w -: 16] : pblk[w / 8][127 - 16*(w % 8) -: 16]};
      for (int k = 0; k < 3; k++) acc = {16'h0, acc[15:0]} + {16'h0, acc[31:16]};
      blk0_patched[47:32] = ~acc[15:0];
    end
  end
  /* verilator lint_on UNUSEDSIGNAL */

  // ---- Control ----------------------------------------------------------------------------
  logic [W_W-1:0] beat;
  logic [63:0]    rx_seq;
  logic [1:0]     sbits, hbits, rsbits, rhbits;
  logic           evs, evh, revs, revh;
  espo_core_pkg::sa_row_t        tx_acct, rx_moved, rx_acct;
  logic [15:0]    udp_sum;
  // Lifetime accounting (§11): one packet of the inner length; events on first crossing.
  always_comb begin
    logic [31:0] a;
    tx_acct = row;
    tx_acct.packets = row.packets + 1;
    tx_acct.bytes = row.bytes + 64'(tx_inner_len);
    sbits = {cfg.soft_packets != 0 && tx_acct.packets >= cfg.soft_packets,
             cfg.soft_bytes != 0 && tx_acct.bytes >= cfg.soft_bytes};
    hbits = {cfg.hard_packets != 0 && tx_acct.packets >= cfg.hard_packets,
             cfg.hard_bytes != 0 && tx_acct.bytes >= cfg.hard_bytes};
    evs = sbits != 0 && !row.soft_expired;
    evh = hbits != 0 && !row.hard_expired;
    if (evs) tx_acct.soft_expired = 1'b1;
    if (evh) tx_acct.hard_expired = 1'b1;
    tx_acct.seq = tx_seq;
    if (tx_seq == espo_core_pkg::seq_limit(cfg.esn)) tx_acct.seq_exhausted = 1'b1;
    rx_moved = row_w;
    if (seq > row_w.seq) rx_moved.seq = seq;
    rx_acct = rx_moved;
    rx_acct.packets = rx_moved.packets + 1;
    rx_acct.bytes = rx_moved.bytes + 64'(rx_inner_len);
    rsbits = {cfg.soft_packets != 0 && rx_acct.packets >= cfg.soft_packets,
              cfg.soft_bytes != 0 && rx_acct.bytes >= cfg.soft_bytes};
    rhbits = {cfg.hard_packets != 0 && rx_acct.packets >= cfg.hard_packets,
              cfg.hard_bytes != 0 && rx_acct.bytes >= cfg.hard_bytes};
    revs = rsbits != 0 && !rx_moved.soft_expired;
    revh = rhbits != 0 && !rx_moved.hard_expired;
    if (revs) rx_acct.soft_expired = 1'b1;
    if (revh) rx_acct.hard_expired = 1'b1;
    a = udp_static + udp_acc;
    for (int w = 0; w < 8; w++) a = a + {16'h0, tag[127 - 16*w -: 16]};
    for (int k = 0; k < 3; k++) a = {16'h0, a[15:0]} + {16'h0, a[31:16]};
    udp_sum = (a[15:0] == 16'hffff) ? 16'hffff : ~a[15:0];
  end
  assign fin_icv_we = st == S_FINISH && is_tx;
  assign fin_blk0_we = st == S_FINISH && !is_tx && icv_ok && trailer_ok && inner_ok && !ecn_drop
                       && ecn_change;
  assign rx_seq = cfg.esn ? espo_core_pkg::infer_esn(row.seq, cfg.replay_window, rx_seq_low) : {32'h0, rx_seq_low};
  assign s_tready = (st == S_IDLE && !admin_req && !admin_busy) || st == S_RECV || st == S_DROP;

  always_ff @(posedge clk) begin
    if ((st == S_IDLE || st == S_RECV) && s_tvalid && s_tready && wr_ptr < W_W'(FRAME_WORDS))
      ibuf[wr_ptr] <= s_tdata;
  end

  always_ff @(posedge clk or negedge rst_n) begin
    if (!rst_n) dropped <= 1'b0;
    else dropped <= s_tvalid && s_tready && s_tlast
                    && (st == S_DROP || ((st == S_IDLE || st == S_RECV)
                        && (wr_ptr >= W_W'(FRAME_WORDS)
                            || LEN_W'(64 * 32'(wr_ptr)) + LEN_W'(keep_count(s_tkeep)) > LEN_W'(MAX_FRAME))));
  end

  always_ff @(posedge clk or negedge rst_n) begin
    if (!rst_n) begin
      st <= S_IDLE;
      wr_ptr <= '0;
      lk_req <= 1'b0;
      dp_row_we <= 1'b0;
      dp_rp_we <= 1'b0;
      slot <= '0;
      beat <= '0;
    end else begin
      lk_req <= 1'b0;
      dp_row_we <= 1'b0;
      dp_rp_we <= 1'b0;
      unique case (st)
        S_IDLE, S_RECV: if (s_tvalid && s_tready) begin
          logic [LEN_W-1:0] n;
          if (st == S_IDLE) sb <= s_tuser;
          n = LEN_W'(64 * 32'(wr_ptr)) + LEN_W'(keep_count(s_tkeep));
          if (wr_ptr >= W_W'(FRAME_WORDS) || n > LEN_W'(MAX_FRAME)) begin
            wr_ptr <= '0;
            st <= s_tlast ? S_IDLE : S_DROP;
          end else begin
            wr_ptr <= wr_ptr + 1'b1;
            st <= s_tlast ? S_LOOK : S_RECV;
            if (s_tlast) flen <= n;
          end
        end
        S_DROP: if (s_tvalid && s_tlast) st <= S_IDLE;
        S_LOOK: begin
          wr_ptr <= '0;
          res <= '0;
          res.sa_index <= '1;
          pass <= 1'b1;
          is_tx <= sb.outbound;
          if (sb.outbound) begin
            res.sa_index <= sb.sa_index;
            if (32'(flen) < 14) begin
              res.status <= espo_pkg::STATUS_MALFORMED;
              st <= S_OUT;
            end else if (sb.bypass) begin
              res.status <= espo_pkg::STATUS_BYPASS;
              st <= S_OUT;
            end else if (sb.sa_index >= SA_COUNT) begin
              res.status <= espo_pkg::STATUS_SA_INVALID;
              st <= S_OUT;
            end else begin
              idx_q <= sb.sa_index[IDX_W-1:0];
              st <= S_SA_RD;
            end
          end else if (rx_cls != espo_core_pkg::RX_ESP) begin
            res.status <= (rx_cls == espo_core_pkg::RX_BYPASS) ? espo_pkg::STATUS_BYPASS : espo_pkg::STATUS_MALFORMED;
            st <= S_OUT;
          end else begin
            lk_req <= 1'b1;
            res.spi <= rx_spi;
            res.udp_encap <= rx_udp;
            outer_tos <= rx_tos[1:0];
            st <= S_LOOK_WAIT;
          end
        end
        S_LOOK_WAIT: if (lk_done) begin
          if (!lk_hit) begin
            res.status <= espo_pkg::STATUS_NO_SA;
            st <= S_OUT;
          end else begin
            idx_q <= lk_idx;
            res.sa_index <= 32'(lk_idx);
            st <= S_SA_RD;
          end
        end
        S_SA_RD: st <= S_SA;
        S_RP_RD: st <= S_RP;
        S_SA: begin
          key <= espo_core_pkg::key_be(cfg.key);
          is256 <= cfg.alg == espo_pkg::ALG_AES_GCM_256;
          esn <= cfg.esn;
          salt <= {cfg.salt[7:0], cfg.salt[15:8], cfg.salt[23:16], cfg.salt[31:24]};
          row_w <= row;
          slot <= '0;
          if (is_tx) begin
            if (!row.valid) res.status <= espo_pkg::STATUS_SA_INVALID;
            else if (!tx_ok) res.status <= espo_pkg::STATUS_MALFORMED;
            else if (!cfg.outbound) res.status <= espo_pkg::STATUS_SA_INVALID;
            else if (row.hard_expired) res.status <= espo_pkg::STATUS_SA_EXPIRED;
            else if (row.seq_exhausted || row.seq >= espo_core_pkg::seq_limit(cfg.esn)) res.status <= espo_pkg::STATUS_SEQ_EXHAUSTED;
            else if (32'(tx_out_len) > MAX_FRAME) res.status <= espo_pkg::STATUS_TOO_BIG;
            if (!row.valid || !tx_ok || !cfg.outbound || row.hard_expired || row.seq_exhausted
                || row.seq >= espo_core_pkg::seq_limit(cfg.esn) || 32'(tx_out_len) > MAX_FRAME) st <= S_OUT;
            else begin
              row_w <= tx_acct;
              dp_row_we <= 1'b1;
              res.status <= espo_pkg::STATUS_OK;
              res.seq <= tx_seq;
              res.sa_index <= sb.sa_index;
              res.spi <= cfg.spi;
              res.transformed <= 1'b1;
              res.inner_ipv6 <= tx_v6;
              res.udp_encap <= cfg.udp_encap;
              res.ev_soft <= evs;
              res.ev_hard <= evh;
              res.ev_seq_exhausted <= tx_seq == espo_core_pkg::seq_limit(cfg.esn);
              res.soft_aux <= sbits;
              res.hard_aux <= hbits;
              seq <= tx_seq;
              iv <= tx_seq;
              hdr <= tx_hdr;
              ha <= tx_ha;
              out_len <= tx_out_len;
              udp_static <= tx_udp_static;
              outer_v6_udp <= cfg.outer_ipv6 && cfg.udp_encap;
              inner_len <= tx_inner_len;
              text_off <= LEN_W'(14);
              text_len <= tx_pt_len;
              nblk <= (W_W+2)'(tx_pt_len >> 4);
              pad <= tx_pad;
              nh <= tx_v6 ? 8'd41 : 8'd4;
              st <= S_ISSUE;
            end
          end else begin
            if (row.hard_expired) begin
              res.status <= espo_pkg::STATUS_SA_EXPIRED;
              st <= S_OUT;
            end else if (rx_esp_len < 36 || rx_esp_len[1:0] != 0) begin
              res.status <= espo_pkg::STATUS_MALFORMED;
              st <= S_OUT;
            end else begin
              seq <= rx_seq;
              res.seq <= rx_seq;
              iv <= rx_iv;
              text_off <= rx_esp_at + 16;
              text_len <= rx_esp_len - 32;
              icv_at <= rx_esp_at + rx_esp_len - 16;
              nblk <= (W_W+2)'((rx_esp_len - LEN_W'(17)) >> 4);
              rp_addr <= {idx_q, rx_seq[6 +: RP_W]};
              st <= S_RP_RD;
            end
          end
        end
        S_RP: if (cfg.esn && espo_core_pkg::esn_wrapped(row_w.seq, seq)) begin
          res.status <= espo_pkg::STATUS_STALE;
          res.seq <= {32'h0, seq[31:0]};
          row_w.replay_drops <= row_w.replay_drops + 1;
          dp_row_we <= 1'b1;
          st <= S_OUT;
        end else if (!espo_core_pkg::replay_ok(row_w.seq, cfg.replay_window, seq, rp_q.tag, rp_q.bits)) begin
          res.status <= espo_core_pkg::replay_stale(row_w.seq, cfg.replay_window, seq)
                        ? espo_pkg::STATUS_STALE : espo_pkg::STATUS_REPLAY;
          row_w.replay_drops <= row_w.replay_drops + 1;
          dp_row_we <= 1'b1;
          st <= S_OUT;
        end else begin
          rp_w <= rp_q;
          st <= S_ISSUE;
        end
        S_ISSUE: begin
          slot <= slot + 1'b1;
          if (slot == nblk + 1) st <= S_WAIT_TAG;
        end
        S_WAIT_TAG: if (tag_valid) st <= S_FINISH;
        S_FINISH: begin
          st <= S_OUT;
          beat <= '0;
          if (is_tx) begin
            if (outer_v6_udp) hdr[8*60 +: 16] <= {udp_sum[7:0], udp_sum[15:8]};
            pass <= 1'b0;
          end else if (!icv_ok) begin
            res.status <= espo_pkg::STATUS_ICV_FAIL;
            row_w.icv_failures <= row_w.icv_failures + 1;
            dp_row_we <= 1'b1;
          end else begin
            dp_rp_we <= cfg.replay_window != 0;
            rp_w <= espo_core_pkg::replay_mark(rp_w.tag, rp_w.bits, seq);
            dp_row_we <= 1'b1;
            row_w <= rx_moved;
            if (!trailer_ok || !inner_ok) res.status <= espo_pkg::STATUS_MALFORMED;
            else if (ecn_drop) res.status <= espo_pkg::STATUS_ECN_DROP;
            else begin
              row_w <= rx_acct;
              res.status <= espo_pkg::STATUS_OK;
              res.transformed <= 1'b1;
              res.inner_ipv6 <= inner_v6;
              res.ev_soft <= revs;
              res.ev_hard <= revh;
              res.soft_aux <= rsbits;
              res.hard_aux <= rhbits;
              hdr <= '0;
              hdr[0 +: 96] <= head[0 +: 96];
              hdr[96 +: 16] <= inner_v6 ? 16'hdd86 : 16'h0008;
              ha <= LEN_W'(14);
              out_len <= rx_inner_len + 14;
              pass <= 1'b0;
            end
          end
        end
        S_OUT: if (m_tready) begin
          beat <= beat + 1'b1;
          if (m_tlast) st <= S_IDLE;
        end
        default: st <= S_IDLE;
      endcase
      if (st == S_LOOK || st == S_SA) beat <= '0;
    end
  end

  // ---- Output ------------------------------------------------------------------------------
  always_comb begin
    logic [LEN_W-1:0] len, start, base;
    logic [511:0] body, h;
    logic [1023:0] two;
    logic [W_W-1:0] w;
    base = '0;
    w = '0;
    two = '0;
    body = '0;
    h = '0;
    m_tdata = '0;
    len = pass ? flen : out_len;
    start = LEN_W'(64 * 32'(beat));
    m_tvalid = st == S_OUT;
    m_tuser = res;
    m_tlast = 32'(start) + 64 >= 32'(len);
    for (int i = 0; i < 64; i++) m_tkeep[i] = 32'(start) + i < 32'(len);
    if (pass) m_tdata = ibuf[beat];
    else begin
      if (start >= ha) begin
        base = start - ha;
        w = W_W'(base >> 6);
        two = {obuf[w + 1'b1], obuf[w]};
        body = 512'(two >> (8 * base[5:0]));
      end else if (ha - start < 64) begin
        body = obuf[0] << (8 * (ha - start));
      end else body = '0;
      h = (beat < 2) ? hdr[512 * beat[0] +: 512] : '0;
      for (int i = 0; i < 64; i++) m_tdata[8*i +: 8] = (32'(start) + i < 32'(ha)) ? h[8*i +: 8] : body[8*i +: 8];
    end
  end
endmodule
