// espo_sa_table: the SA table of the ESP core in on-chip RAM, its inbound lookup by
// (SPI, outer destination), the replay-window RAM, and the register port that writes them.
//
// Register port (32-bit words, byte addresses; every offset derives from espo_pkg sizes):
//   [0, SA_ENTRY)                 SA_ENTRY staging image (datasheet §4.3), RW
//   [SA_ENTRY, +SA_STATE)         SA_STATE staging image: SA_WRITE with STATE imports its
//                                 scalar fields and BITMAP; SA_READ / SA_INVALIDATE export
//                                 the scalar fields (BITMAP is write-only). RW
//   [.., +ADMIN_CMD)              ADMIN_CMD image: write SA_INDEX (word 1), then word 0
//                                 (OPCODE, STATE, CID), which executes the command (§8.2)
//   [.., +ADMIN_CPL)              ADMIN_CPL image, RO: RESULT, CID, STATUS; PHASE = 1 when done
// A command runs only between packets (dp_idle), so a packet sees an SA wholly before or
// wholly after it (§8.6). Lookup: hash of (SPI, destination) selects a bucket of
// LOOKUP_WAYS entries holding the key itself; one RAM read and a compare per packet.
module espo_sa_table #(
  parameter int SA_COUNT = espo_pkg::CAP_SA_TABLE_SIZE_RESET,
  parameter int BUCKETS = 1024,
  parameter int IDX_W = $clog2(SA_COUNT),
  // Ring words per SA: enough for the largest window plus one word (RFC 6479).
  parameter int RP_WORDS = 2 ** $clog2(espo_pkg::CAP_REPLAY_WINDOW_MAX_RESET / 64 + 1),
  parameter int RP_W = $clog2(RP_WORDS)
) (
  input  logic                  clk,
  input  logic                  rst_n,
  input  logic                  reg_we,
  input  logic [11:0]           reg_addr,
  input  logic [31:0]           reg_wdata,
  output logic [31:0]           reg_rdata,
  input  logic                  dp_idle,     // datapath grants: it holds no packet
  output logic                  admin_req,   // a command waits for dp_idle
  output logic                  admin_busy,
  // Datapath access, one-cycle read latency; only while !admin_busy.
  input  logic [IDX_W-1:0]      dp_idx,
  output espo_pkg::sa_entry_t          cfg_q,
  output espo_core_pkg::sa_row_t       row_q,
  input  logic                         dp_row_we,
  input  espo_core_pkg::sa_row_t       dp_row_wdata,
  input  logic [IDX_W+RP_W-1:0]        dp_rp_addr,
  output espo_core_pkg::replay_word_t  rp_q,
  input  logic                         dp_rp_we,
  input  espo_core_pkg::replay_word_t  dp_rp_wdata,
  input  logic                  lk_req,
  input  logic [31:0]           lk_spi,
  input  logic [127:0]          lk_dst,
  output logic                  lk_done,
  output logic                  lk_hit,
  output logic [IDX_W-1:0]      lk_idx
);
  localparam int WAYS = 4;   // free_way below is 2 bits wide
  localparam int BKT_W = $clog2(BUCKETS);
  localparam int ENTRY_WORDS = espo_pkg::SA_ENTRY_SIZE_BYTES / 4;
  localparam int STATE_WORDS = espo_pkg::SA_STATE_BITMAP_LSB / 32;   // scalar part
  localparam int BM_WORDS = espo_pkg::SA_STATE_BITMAP_WIDTH / 32;     // BITMAP, write-only
  localparam int BM_BASE = espo_pkg::SA_ENTRY_SIZE_BYTES + STATE_WORDS * 4;
  localparam int STATE_BASE = espo_pkg::SA_ENTRY_SIZE_BYTES;
  localparam int CMD_BASE = STATE_BASE + espo_pkg::SA_STATE_SIZE_BYTES;
  localparam int CPL_BASE = CMD_BASE + espo_pkg::ADMIN_CMD_SIZE_BYTES;
  localparam int CPL_END = CPL_BASE + espo_pkg::ADMIN_CPL_SIZE_BYTES;

  // A bucket: WAYS ways of {valid, spi, dst, idx}, way w at [w*WAY_W +: WAY_W].
  localparam int WAY_W = 1 + 32 + 128 + IDX_W;
  localparam int IDX_LSB = 0;
  localparam int DST_LSB = IDX_W;
  localparam int SPI_LSB = IDX_W + 128;
  localparam int VALID_BIT = IDX_W + 160;

  function automatic logic [WAY_W-1:0] way_of(input logic [WAYS*WAY_W-1:0] b, input int w);
    way_of = b[w*WAY_W +: WAY_W];
  endfunction

  // The way holds (spi, dst) at an index other than idx.
  function automatic logic way_holds(input logic [WAY_W-1:0] x, input logic [31:0] spi,
                                     input logic [127:0] dst);
    way_holds = x[VALID_BIT] && x[SPI_LSB +: 32] == spi && x[DST_LSB +: 128] == dst;
  endfunction

  function automatic logic [BKT_W-1:0] bucket_of(input logic [31:0] spi, input logic [127:0] dst);
    logic [31:0] x;
    x = spi ^ dst[31:0] ^ dst[63:32] ^ dst[95:64] ^ dst[127:96];
    x = x ^ (x >> 13) ^ (x >> 23);
    bucket_of = x[BKT_W-1:0];
  endfunction

  // An IPv4 destination keeps its first four bytes only (§0).
  function automatic logic [127:0] lookup_dst(input logic outer_ipv6, input logic [127:0] dst);
    lookup_dst = outer_ipv6 ? dst : {96'h0, dst[31:0]};
  endfunction

  function automatic logic [WAYS*WAY_W-1:0] bucket_without(input logic [WAYS*WAY_W-1:0] b,
                                                           input logic [IDX_W-1:0] idx);
    bucket_without = b;
    for (int w = 0; w < WAYS; w++)
      if (b[w*WAY_W + VALID_BIT] && b[w*WAY_W + IDX_LSB +: IDX_W] == idx)
        bucket_without[w*WAY_W + VALID_BIT] = 1'b0;
  endfunction

  // ---- RAMs -----------------------------------------------------------------------------
  // Plain vectors: Yosys 0.23 infers no memory from an unpacked array of a struct type.
  logic [$bits(cfg_q)-1:0] cfg_mem [SA_COUNT];
  logic [$bits(row_q)-1:0] row_mem [SA_COUNT];
  logic [WAYS*WAY_W-1:0]   bkt_mem [BUCKETS];
  logic [$bits(rp_q)-1:0]  rp_mem  [SA_COUNT * RP_WORDS];

  logic [IDX_W-1:0]      a_idx;
  logic                  a_cfg_we, a_row_we, a_bkt_we, a_rp_we;
  espo_pkg::sa_entry_t    a_cfg_wdata;
  espo_core_pkg::sa_row_t a_row_wdata;
  logic [WAYS*WAY_W-1:0]  a_bkt_wdata, bkt_q;
  logic [BKT_W-1:0]      a_bkt_addr, lk_bkt;
  logic [RP_W-1:0]       a_rp_word;
  espo_core_pkg::replay_word_t a_rp_wdata;

  logic [IDX_W-1:0]      idx_m;
  logic [BKT_W-1:0]      bkt_m;
  logic [IDX_W+RP_W-1:0] rp_m;
  assign idx_m = admin_busy ? a_idx : dp_idx;
  assign bkt_m = admin_busy ? a_bkt_addr : lk_bkt;
  assign rp_m  = admin_busy ? {a_idx, a_rp_word} : dp_rp_addr;

  always_ff @(posedge clk) begin
    if (admin_busy && a_cfg_we) cfg_mem[idx_m] <= a_cfg_wdata;
    cfg_q <= cfg_mem[idx_m];
  end
  always_ff @(posedge clk) begin
    if (admin_busy ? a_row_we : dp_row_we) row_mem[idx_m] <= admin_busy ? a_row_wdata : dp_row_wdata;
    row_q <= row_mem[idx_m];
  end
  always_ff @(posedge clk) begin
    if (admin_busy && a_bkt_we) bkt_mem[bkt_m] <= a_bkt_wdata;
    bkt_q <= bkt_mem[bkt_m];
  end
  always_ff @(posedge clk) begin
    if (admin_busy ? a_rp_we : dp_rp_we) rp_mem[rp_m] <= admin_busy ? a_rp_wdata : dp_rp_wdata;
    rp_q <= rp_mem[rp_m];
  end

  // ---- Lookup -----------------------------------------------------------------------------
  logic         lk_pend;
  logic [31:0]  lk_spi_q;
  logic [127:0] lk_dst_q;
  assign lk_bkt = bucket_of(lk_spi, lk_dst);
  always_ff @(posedge clk or negedge rst_n) begin
    if (!rst_n) begin
      lk_pend <= 1'b0;
      lk_done <= 1'b0;
    end else begin
      lk_pend <= lk_req && !admin_busy;
      lk_done <= lk_pend;
    end
  end
  always_ff @(posedge clk) begin
    if (lk_req) begin
      lk_spi_q <= lk_spi;
      lk_dst_q <= lk_dst;
    end
    if (lk_pend) begin
      lk_hit <= 1'b0;
      lk_idx <= '0;
      for (int w = WAYS - 1; w >= 0; w--)
        if (way_holds(way_of(bkt_q, w), lk_spi_q, lk_dst_q)) begin
          lk_hit <= 1'b1;
          lk_idx <= bkt_q[w*WAY_W + IDX_LSB +: IDX_W];
        end
    end
  end

  // ---- Register port and staging ----------------------------------------------------------
  logic [31:0] entry_w [ENTRY_WORDS];
  logic [31:0] state_w [STATE_WORDS];
  espo_pkg::admin_cmd_t  cmd;
  espo_pkg::admin_cpl_t  cpl;
  logic                  cmd_pending;
  espo_pkg::sa_entry_t   staged;
  /* verilator lint_off UNUSEDSIGNAL */
  espo_pkg::sa_state_t   staged_state;   // scalar fields; BITMAP is in bm_mem
  /* verilator lint_on UNUSEDSIGNAL */
  logic [127:0]          staged_dst;     // lookup key form of the staged destination
  assign staged_dst = lookup_dst(staged.outer_ipv6, staged.dst_addr);

  assign admin_req = cmd_pending;


  always_comb begin
    for (int i = 0; i < ENTRY_WORDS; i++) staged[32*i +: 32] = entry_w[i];
    staged_state = '0;
    for (int i = 0; i < STATE_WORDS; i++) staged_state[32*i +: 32] = state_w[i];
  end

  always_comb begin
    int unsigned a;
    a = 32'(reg_addr);
    reg_rdata = '0;
    if (a < STATE_BASE) reg_rdata = entry_w[a / 4];
    else if (a < STATE_BASE + STATE_WORDS * 4) reg_rdata = state_w[(a - STATE_BASE) / 4];
    else if (a >= CMD_BASE && a < CPL_BASE) reg_rdata = cmd[32 * ((a - CMD_BASE) / 4) +: 32];
    else if (a >= CPL_BASE && a < CPL_END) reg_rdata = cpl[32 * ((a - CPL_BASE) / 4) +: 32];
  end

  // ---- Admin command FSM -------------------------------------------------------------------
  typedef enum logic [3:0] {
    A_IDLE, A_START, A_W_OLD, A_W_DUP, A_W_RM, A_W_RD_NEW, A_W_INS, A_W_WRITE, A_CLEAR,
    A_R_ROW, A_I_RM, A_DONE
  } astate_e;
  astate_e          ast;
  logic [7:0]       a_status;
  logic [63:0]      a_result;
  logic             old_inbound;
  logic [BKT_W-1:0] old_bkt;
  espo_pkg::sa_state_t export_image;

  logic [IDX_W-1:0] cmd_idx;
  logic             idx_ok, alg_ok, fields_ok, new_inbound;
  logic [BKT_W-1:0] new_bkt;
  assign cmd_idx = cmd.sa_index[IDX_W-1:0];
  assign idx_ok = cmd.sa_index < SA_COUNT;
  assign alg_ok = staged.alg == espo_pkg::ALG_AES_GCM_128 || staged.alg == espo_pkg::ALG_AES_GCM_256;
  assign fields_ok = staged.replay_window <= espo_pkg::CAP_REPLAY_WINDOW_MAX_RESET && staged.spi != 0
                     && (staged.esn || staged.seq <= 64'h0000_0000_FFFF_FFFF)
                     && 8'(staged.df_mode) <= espo_pkg::DF_CLEAR;
  assign new_inbound = !staged.outbound;
  assign new_bkt = bucket_of(staged.spi, staged_dst);

  // The staged BITMAP (bit i: SEQ - i received), a RAM of 32-bit words written through the
  // register port. SA_WRITE with STATE of an inbound SA fills each ring word from it while
  // it walks the ring (A_CLEAR): ring word r holds block T - k, T = SEQ >> 6,
  // k = (T - r) mod RP_WORDS, whose bit j is BITMAP bit 64k + (SEQ mod 64) - j.
  logic [31:0] bm_mem [BM_WORDS];
  always_ff @(posedge clk) begin
    int unsigned a;
    a = 32'(reg_addr);
    if (reg_we && !admin_busy && a >= BM_BASE && a < BM_BASE + BM_WORDS * 4)
      bm_mem[(a - BM_BASE) / 4] <= reg_wdata;
  end
  always_comb begin
    logic [RP_W-1:0] k;
    logic [57:0]     top_blk;
    logic [127:0]    c, sh;
    top_blk = staged_state.seq[63:6];
    k = top_blk[RP_W-1:0] - a_rp_word;
    // BITMAP words 2k - 2 .. 2k + 1 (64-bit words k - 1 and k); beyond the bitmap, zero.
    c = '0;
    for (int i = 0; i < 4; i++) begin
      int w;
      w = 2 * 32'(k) + i - 2;
      if (w >= 0 && w < BM_WORDS) c[32*i +: 32] = bm_mem[w];
    end
    sh = c >> (7'(staged_state.seq[5:0]) + 7'd1);
    a_rp_wdata = '0;
    if (cmd.state && new_inbound && top_blk >= 58'(k)) begin
      a_rp_wdata.tag = top_blk - 58'(k);
      for (int j = 0; j < 64; j++) a_rp_wdata.bits[j] = sh[63 - j];
    end
  end

  always_comb begin
    export_image = '0;
    export_image.seq = row_q.valid ? row_q.seq : '0;
    export_image.bytes = row_q.bytes;
    export_image.packets = row_q.packets;
    export_image.replay_drops = row_q.replay_drops;
    export_image.icv_failures = row_q.icv_failures;
    export_image.valid = row_q.valid;
    export_image.soft_expired = row_q.soft_expired;
    export_image.hard_expired = row_q.hard_expired;
    export_image.seq_exhausted = row_q.seq_exhausted;
    export_image.window = (row_q.valid && !cfg_q.outbound) ? cfg_q.replay_window : '0;
  end

  // The row SA_WRITE installs: counters from 0, or imported from the staged SA_STATE.
  espo_core_pkg::sa_row_t init_row;
  always_comb begin
    logic [63:0] limit;
    limit = espo_core_pkg::seq_limit(staged.esn);
    init_row = '0;
    init_row.valid = 1'b1;
    init_row.seq = staged.outbound ? staged.seq : '0;
    init_row.seq_exhausted = staged.seq == limit;
    if (cmd.state) begin
      init_row.bytes = staged_state.bytes;
      init_row.packets = staged_state.packets;
      init_row.replay_drops = staged_state.replay_drops;
      init_row.icv_failures = staged_state.icv_failures;
      init_row.soft_expired = staged_state.soft_expired;
      init_row.hard_expired = staged_state.hard_expired;
      init_row.seq = staged_state.seq;
      if (staged.outbound) init_row.seq_exhausted = staged_state.seq_exhausted || staged_state.seq >= limit;
    end
  end

  logic [1:0] free_way;
  always_comb begin
    free_way = '0;
    a_cfg_we = 1'b0;
    a_row_we = 1'b0;
    a_bkt_we = 1'b0;
    a_rp_we = 1'b0;
    a_cfg_wdata = staged;
    a_cfg_wdata.dst_addr = staged_dst;
    a_row_wdata = init_row;
    a_bkt_wdata = bkt_q;
    a_bkt_addr = new_bkt;
    unique case (ast)
      A_W_OLD:    a_bkt_addr = new_bkt;
      A_W_DUP:    a_bkt_addr = old_inbound ? old_bkt : new_bkt;
      A_W_RM: begin
        a_bkt_addr = old_bkt;
        a_bkt_we = 1'b1;
        a_bkt_wdata = bucket_without(bkt_q, cmd_idx);
      end
      A_W_INS: begin
        a_bkt_we = 1'b1;
        a_bkt_wdata = bkt_q;
        for (int w = WAYS - 1; w >= 0; w--)
          if (!bkt_q[w*WAY_W + VALID_BIT]) free_way = 2'(w);
        for (int w = 0; w < WAYS; w++)
          if (w == 32'(free_way)) a_bkt_wdata[w*WAY_W +: WAY_W] = {1'b1, staged.spi, staged_dst, cmd_idx};
      end
      A_W_WRITE: begin
        a_cfg_we = 1'b1;
        a_row_we = 1'b1;
      end
      A_CLEAR: a_rp_we = 1'b1;
      A_R_ROW: a_bkt_addr = bucket_of(cfg_q.spi, cfg_q.dst_addr);   // stored in lookup form
      A_I_RM: begin
        a_bkt_addr = old_bkt;
        a_bkt_we = old_inbound;
        a_bkt_wdata = bucket_without(bkt_q, cmd_idx);
        a_row_we = cmd.opcode == espo_pkg::ADMIN_OP_SA_INVALIDATE;
        a_row_wdata = '0;
      end
      default: ;
    endcase
  end

  always_ff @(posedge clk or negedge rst_n) begin
    if (!rst_n) begin
      ast <= A_IDLE;
      admin_busy <= 1'b0;
      cmd_pending <= 1'b0;
      cmd <= '0;
      cpl <= '0;
      a_idx <= '0;
      a_rp_word <= '0;
      for (int i = 0; i < ENTRY_WORDS; i++) entry_w[i] <= '0;
      for (int i = 0; i < STATE_WORDS; i++) state_w[i] <= '0;
    end else begin
      if (reg_we && !admin_busy) begin
        int unsigned a;
        a = 32'(reg_addr);
        if (a < STATE_BASE) entry_w[a / 4] <= reg_wdata;
        else if (a < STATE_BASE + STATE_WORDS * 4) state_w[(a - STATE_BASE) / 4] <= reg_wdata;
        else if (a >= CMD_BASE && a < CPL_BASE) begin
          cmd[32 * ((a - CMD_BASE) / 4) +: 32] <= reg_wdata;
          if (a == CMD_BASE) begin
            cmd_pending <= 1'b1;
            cpl.phase <= 1'b0;
          end
        end
      end
      unique case (ast)
        A_IDLE: if (cmd_pending && dp_idle) begin
          admin_busy <= 1'b1;
          a_idx <= cmd_idx;
          a_status <= espo_pkg::STATUS_OK;
          a_result <= '0;
          ast <= A_START;
        end
        A_START: begin
          if (cmd.opcode == espo_pkg::ADMIN_OP_NOP) ast <= A_DONE;
          else if (cmd.opcode != espo_pkg::ADMIN_OP_SA_WRITE && cmd.opcode != espo_pkg::ADMIN_OP_SA_INVALIDATE
                   && cmd.opcode != espo_pkg::ADMIN_OP_SA_READ) begin
            a_status <= espo_pkg::STATUS_INVALID_OPCODE;
            ast <= A_DONE;
          end else if (!idx_ok) begin
            a_status <= espo_pkg::STATUS_INVALID_SA_INDEX;
            ast <= A_DONE;
          end else if (cmd.opcode == espo_pkg::ADMIN_OP_SA_WRITE) begin
            if (!alg_ok) begin
              a_status <= espo_pkg::STATUS_ALG_UNSUPPORTED;
              ast <= A_DONE;
            end else if (!fields_ok) begin
              a_status <= espo_pkg::STATUS_INVALID_FIELD;
              ast <= A_DONE;
            end else ast <= A_W_OLD;       // cfg_q/row_q of a_idx, bkt_q of new_bkt next
          end else ast <= A_R_ROW;
        end
        A_W_OLD: begin
          old_inbound <= row_q.valid && !cfg_q.outbound;
          old_bkt <= bucket_of(cfg_q.spi, cfg_q.dst_addr);
          ast <= A_W_DUP;                  // bkt_q now holds the new key's bucket
        end
        A_W_DUP: begin
          logic dup, room;
          dup = 1'b0;
          room = 1'b0;
          for (int w = 0; w < WAYS; w++) begin
            if (way_holds(way_of(bkt_q, w), staged.spi, staged_dst)
                && bkt_q[w*WAY_W + IDX_LSB +: IDX_W] != cmd_idx) dup = 1'b1;
            if (!bkt_q[w*WAY_W + VALID_BIT] || bkt_q[w*WAY_W + IDX_LSB +: IDX_W] == cmd_idx) room = 1'b1;
          end
          if (new_inbound && (dup || !room)) begin
            a_status <= espo_pkg::STATUS_INVALID_FIELD;
            ast <= A_DONE;
          end else ast <= old_inbound ? A_W_RM : (new_inbound ? A_W_INS : A_W_WRITE);
        end
        A_W_RM: ast <= new_inbound ? A_W_RD_NEW : A_W_WRITE;   // old bucket written now
        A_W_RD_NEW: ast <= A_W_INS;                            // re-read the new bucket
        A_W_INS: ast <= A_W_WRITE;
        A_W_WRITE: begin
          a_rp_word <= '0;
          ast <= A_CLEAR;
        end
        A_CLEAR: begin
          a_rp_word <= a_rp_word + 1'b1;
          if (a_rp_word == RP_W'(RP_WORDS - 1)) ast <= A_DONE;
        end
        A_R_ROW: begin
          for (int i = 0; i < STATE_WORDS; i++) state_w[i] <= export_image[32*i +: 32];
          a_result <= export_image.seq;
          old_inbound <= row_q.valid && !cfg_q.outbound;
          old_bkt <= bucket_of(cfg_q.spi, cfg_q.dst_addr);
          ast <= (cmd.opcode == espo_pkg::ADMIN_OP_SA_INVALIDATE) ? A_I_RM : A_DONE;
        end
        A_I_RM: ast <= A_DONE;
        A_DONE: begin
          cpl.status <= a_status;
          cpl.result <= a_result;
          cpl.cid <= cmd.cid;
          cpl.phase <= 1'b1;
          cmd_pending <= 1'b0;
          admin_busy <= 1'b0;
          ast <= A_IDLE;
        end
        default: ast <= A_IDLE;
      endcase
    end
  end
endmodule
