// espo_gcm: AES-GCM (SP 800-38D) with 96-bit IVs, one 16-byte block per cycle.
//
// The issuer feeds one slot per cycle, in this order per message:
//   H     AES input 0^128: the hash subkey.
//   J0    AES input IV || 1: the tag mask; carries the first AAD block (in_has_aad).
//   AAD   further AAD blocks (no AES output used), zero-padded.
//   TEXT  AES input IV || inc32 counter; in_data is the text block, zero-padded after
//         in_vbytes bytes.
// in_last marks the message's final slot and carries the length block (len(A) || len(C) in
// bits). Every slot passes the AES pipeline (espo_aes_pipe); behind it one GF(2^128)
// multiplier folds one block per cycle into GHASH. The tag appears two cycles after the
// last slot leaves the pipeline: the cycle after it, which is the next message's H slot or
// idle, is when no other block needs the multiplier. Messages may follow back to back.
// There is no backpressure: outputs must be taken when valid.
module espo_gcm #(
  parameter int USER_W = 1
) (
  input  logic              clk,
  input  logic              rst_n,
  input  logic              in_valid,
  input  logic [1:0]        in_kind,     // espo_gcm_pkg::gcm_kind_e
  input  logic [127:0]      in_ctr,      // AES input (0, J0 or counter block), big-endian
  input  logic [255:0]      in_key,
  input  logic              in_is256,
  input  logic [127:0]      in_data,
  input  logic              in_has_aad,
  input  logic [4:0]        in_vbytes,
  input  logic              in_decrypt,
  input  logic              in_last,
  input  logic [127:0]      in_lenblk,
  input  logic [USER_W-1:0] in_user,
  output logic              out_text_valid,
  output logic [127:0]      out_text,    // big-endian, bytes past vbytes zero
  output logic [4:0]        out_text_vbytes,
  output logic [USER_W-1:0] out_text_user,
  output logic              out_tag_valid,
  output logic [127:0]      out_tag,
  output logic [USER_W-1:0] out_tag_user
);

  typedef struct packed {
    logic [1:0]        kind;
    logic [127:0]      data;
    logic              has_aad;
    logic [4:0]        vbytes;
    logic              decrypt;
    logic              last;
    logic [127:0]      lenblk;
    logic [USER_W-1:0] user;
  } slot_meta_t;

  slot_meta_t in_m, o_m;
  localparam int META_W = $bits(in_m);
  logic       o_valid;
  logic [127:0] ks;

  assign in_m = {in_kind, in_data, in_has_aad, in_vbytes, in_decrypt, in_last, in_lenblk, in_user};

  espo_aes_pipe #(.META_W(META_W)) u_aes (
    .clk, .rst_n,
    .in_valid, .in_block(in_ctr), .in_key, .in_is256, .in_meta(in_m),
    .out_valid(o_valid), .out_block(ks), .out_meta(o_m)
  );

  logic [127:0] h_q, y_q, ej0_q, fin_len_q;
  logic         fin_q;
  logic [USER_W-1:0] fin_user_q;
  logic [127:0] text, cblk, mul_x, product;

  always_comb begin
    text = espo_crypto_pkg::keep_bytes(o_m.data ^ ks, o_m.vbytes);
    cblk = o_m.decrypt ? espo_crypto_pkg::keep_bytes(o_m.data, o_m.vbytes) : text;
    if (fin_q) mul_x = y_q ^ fin_len_q;
    else if (o_m.kind == espo_gcm_pkg::GCM_J0) mul_x = o_m.data;
    else if (o_m.kind == espo_gcm_pkg::GCM_AAD) mul_x = y_q ^ o_m.data;
    else mul_x = y_q ^ cblk;
    product = espo_crypto_pkg::gf128_mul(mul_x, h_q);
  end

  always_ff @(posedge clk or negedge rst_n) begin
    if (!rst_n) begin
      fin_q <= 1'b0;
      out_text_valid <= 1'b0;
      out_tag_valid <= 1'b0;
    end else begin
      fin_q <= o_valid && o_m.last;
      out_text_valid <= o_valid && o_m.kind == espo_gcm_pkg::GCM_TEXT;
      out_tag_valid <= fin_q;
    end
  end

  always_ff @(posedge clk) begin
    if (o_valid) begin
      unique case (o_m.kind)
        espo_gcm_pkg::GCM_H:    h_q <= ks;
        espo_gcm_pkg::GCM_J0:   begin ej0_q <= ks; y_q <= o_m.has_aad ? product : '0; end
        default:  y_q <= product;
      endcase
      if (o_m.last) begin
        fin_len_q <= o_m.lenblk;
        fin_user_q <= o_m.user;
      end
    end
    out_text <= text;
    out_text_vbytes <= o_m.vbytes;
    out_text_user <= o_m.user;
    if (fin_q) begin                 // the tag holds until the next message's
      out_tag <= product ^ ej0_q;
      out_tag_user <= fin_user_q;
    end
  end
endmodule
