// espo_cosim_top: the simulation top that the Rust co-simulation (fpga/cosim, crate
// espo-rtl) compiles with Verilator and drives. It holds a standalone AES pipeline and a
// standalone GCM unit for the FIPS-197, GCM specification and Wycheproof benches.
module espo_cosim_top (
  input  logic         clk,
  input  logic         rst_n,
  // AES unit bench
  input  logic         aes_in_valid,
  input  logic [127:0] aes_in_block,
  input  logic [255:0] aes_in_key,
  input  logic         aes_in_is256,
  output logic         aes_out_valid,
  output logic [127:0] aes_out_block,
  // GCM unit bench
  input  logic         gcm_in_valid,
  input  logic [1:0]   gcm_in_kind,
  input  logic [127:0] gcm_in_ctr,
  input  logic [255:0] gcm_in_key,
  input  logic         gcm_in_is256,
  input  logic [127:0] gcm_in_data,
  input  logic         gcm_in_has_aad,
  input  logic [4:0]   gcm_in_vbytes,
  input  logic         gcm_in_decrypt,
  input  logic         gcm_in_last,
  input  logic [127:0] gcm_in_lenblk,
  input  logic [31:0]  gcm_in_user,
  output logic         gcm_out_text_valid,
  output logic [127:0] gcm_out_text,
  output logic [4:0]   gcm_out_text_vbytes,
  output logic [31:0]  gcm_out_text_user,
  output logic         gcm_out_tag_valid,
  output logic [127:0] gcm_out_tag,
  output logic [31:0]  gcm_out_tag_user
);
  espo_aes_pipe #(.META_W(1)) u_aes (
    .clk, .rst_n,
    .in_valid(aes_in_valid), .in_block(aes_in_block), .in_key(aes_in_key),
    .in_is256(aes_in_is256), .in_meta(1'b0),
    .out_valid(aes_out_valid), .out_block(aes_out_block),
    /* verilator lint_off PINCONNECTEMPTY */
    .out_meta()
    /* verilator lint_on PINCONNECTEMPTY */
  );

  espo_gcm #(.USER_W(32)) u_gcm (
    .clk, .rst_n,
    .in_valid(gcm_in_valid), .in_kind(gcm_in_kind), .in_ctr(gcm_in_ctr), .in_key(gcm_in_key),
    .in_is256(gcm_in_is256), .in_data(gcm_in_data), .in_has_aad(gcm_in_has_aad),
    .in_vbytes(gcm_in_vbytes), .in_decrypt(gcm_in_decrypt), .in_last(gcm_in_last),
    .in_lenblk(gcm_in_lenblk), .in_user(gcm_in_user),
    .out_text_valid(gcm_out_text_valid), .out_text(gcm_out_text),
    .out_text_vbytes(gcm_out_text_vbytes), .out_text_user(gcm_out_text_user),
    .out_tag_valid(gcm_out_tag_valid), .out_tag(gcm_out_tag), .out_tag_user(gcm_out_tag_user)
  );
endmodule
