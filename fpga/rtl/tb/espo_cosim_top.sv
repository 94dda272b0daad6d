// espo_cosim_top: the simulation top that the Rust co-simulation (fpga/cosim, crate
// espo-rtl) compiles with Verilator and drives. It holds the ESP core (espo_core) with its
// sideband and result structures flattened into plain ports, and a standalone AES pipeline
// and GCM unit for the FIPS-197, GCM specification and Wycheproof benches.
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
  output logic [31:0]  gcm_out_tag_user,
  // ESP core
  input  logic         reg_we,
  input  logic [11:0]  reg_addr,
  input  logic [31:0]  reg_wdata,
  output logic [31:0]  reg_rdata,
  input  logic [15:0]  natt_port,
  input  logic         s_tvalid,
  output logic         s_tready,
  input  logic [511:0] s_tdata,
  input  logic [63:0]  s_tkeep,
  input  logic         s_tlast,
  input  logic         s_outbound,
  input  logic         s_bypass,
  input  logic [31:0]  s_sa_index,
  output logic         m_tvalid,
  input  logic         m_tready,
  output logic [511:0] m_tdata,
  output logic [63:0]  m_tkeep,
  output logic         m_tlast,
  output logic [7:0]   m_status,
  output logic [63:0]  m_seq,
  output logic [31:0]  m_sa_index,
  output logic [31:0]  m_spi,
  output logic [7:0]   m_flags,     // transformed, inner_ipv6, udp_encap, ev_soft, ev_hard, ev_seq_exhausted
  output logic [3:0]   m_aux,       // soft_aux, hard_aux
  output logic         dropped
);
  espo_core_pkg::result_t res;
  espo_core u_core (
    .clk, .rst_n, .reg_we, .reg_addr, .reg_wdata, .reg_rdata, .natt_port,
    .s_tvalid, .s_tready, .s_tdata, .s_tkeep, .s_tlast,
    .s_tuser('{outbound: s_outbound, bypass: s_bypass, sa_index: s_sa_index}),
    .m_tvalid, .m_tready, .m_tdata, .m_tkeep, .m_tlast, .m_tuser(res), .dropped
  );
  assign m_status = res.status;
  assign m_seq = res.seq;
  assign m_sa_index = res.sa_index;
  assign m_spi = res.spi;
  assign m_flags = {2'b0, res.transformed, res.inner_ipv6, res.udp_encap, res.ev_soft, res.ev_hard,
                    res.ev_seq_exhausted};
  assign m_aux = {res.soft_aux, res.hard_aux};

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
