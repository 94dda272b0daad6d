// espo_aes_pipe: AES-128/AES-256 encryption, one block per cycle, fully pipelined.
//
// One register stage for the initial AddRoundKey and one per round (14); AES-128 blocks
// pass the last four stages unchanged, so every block has the same latency (LATENCY) and
// blocks of different keys can follow each other on consecutive cycles. The key schedule
// (FIPS-197 5.2) is expanded on the fly: each stage derives the next round key from the
// key words it received, so no per-key setup cycles are needed and a new key costs nothing.
// META travels with each block unchanged.
module espo_aes_pipe #(
  parameter int META_W = 1
) (
  input  logic              clk,
  input  logic              rst_n,
  input  logic              in_valid,
  input  logic [127:0]      in_block,   // big-endian
  input  logic [255:0]      in_key,     // big-endian; AES-128 keys in [255:128]
  input  logic              in_is256,
  input  logic [META_W-1:0] in_meta,
  output logic              out_valid,
  output logic [127:0]      out_block,
  output logic [META_W-1:0] out_meta
);

  localparam int ROUNDS = 14;
  localparam int LATENCY = ROUNDS + 1;

  logic              v     [ROUNDS+1];
  logic [127:0]      st    [ROUNDS+1];
  logic [127:0]      ka    [ROUNDS+1];  // round key r (AES-128) / round key r (AES-256)
  logic [127:0]      kb    [ROUNDS+1];  // AES-256: round key r + 1
  logic              k256  [ROUNDS+1];
  logic [META_W-1:0] meta  [ROUNDS+1];

  // Stage 0: AddRoundKey with round key 0.
  always_ff @(posedge clk or negedge rst_n) begin
    if (!rst_n) v[0] <= 1'b0;
    else v[0] <= in_valid;
  end
  always_ff @(posedge clk) begin
    st[0]   <= in_block ^ in_key[255:128];
    ka[0]   <= in_key[255:128];
    kb[0]   <= in_key[127:0];
    k256[0] <= in_is256;
    meta[0] <= in_meta;
  end

  for (genvar r = 1; r <= ROUNDS; r++) begin : g_round
    logic [127:0] rk, nk, next_st;
    logic         active, final_round;
    always_comb begin
      if (k256[r-1]) begin
        rk = kb[r-1];
        // w[4(r+1)..] from w[4(r-1)..] and w[4r+3]: RotWord+Rcon when 4(r+1) is a multiple of 8.
        nk = espo_crypto_pkg::next_key_words(ka[r-1], kb[r-1][31:0], ((r - 1) % 2) == 0, 4'((r - 1) / 2 + 1));
        active = 1'b1;
        final_round = (r == 14);
      end else begin
        rk = espo_crypto_pkg::next_key_words(ka[r-1], ka[r-1][31:0], 1'b1, 4'(r));
        nk = '0;
        active = (r <= 10);
        final_round = (r == 10);
      end
      next_st = espo_crypto_pkg::shift_rows(espo_crypto_pkg::sub_bytes(st[r-1]));
      if (!final_round) next_st = espo_crypto_pkg::mix_columns(next_st);
      next_st = next_st ^ rk;
    end
    always_ff @(posedge clk or negedge rst_n) begin
      if (!rst_n) v[r] <= 1'b0;
      else v[r] <= v[r-1];
    end
    always_ff @(posedge clk) begin
      st[r]   <= active ? next_st : st[r-1];
      ka[r]   <= active ? (k256[r-1] ? kb[r-1] : rk) : ka[r-1];
      kb[r]   <= active ? nk : kb[r-1];
      k256[r] <= k256[r-1];
      meta[r] <= meta[r-1];
    end
  end

  assign out_valid = v[ROUNDS];
  assign out_block = st[ROUNDS];
  assign out_meta  = meta[ROUNDS];

  // LATENCY is part of the interface contract; users derive their timing from it.
  /* verilator lint_off UNUSEDPARAM */
  localparam int unsigned LATENCY_CYCLES = LATENCY;
  /* verilator lint_on UNUSEDPARAM */
endmodule
