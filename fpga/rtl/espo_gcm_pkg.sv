// espo_gcm_pkg: slot kinds of the espo_gcm issue interface.
package espo_gcm_pkg;
  typedef enum logic [1:0] {
    GCM_H    = 2'd0,  // hash subkey: AES(0)
    GCM_J0   = 2'd1,  // tag mask: AES(IV || 1), with the first AAD block
    GCM_AAD  = 2'd2,  // further AAD block
    GCM_TEXT = 2'd3   // text block, AES(IV || counter)
  } gcm_kind_e;
endpackage
