espo_pkg.sv
espo_crypto_pkg.sv
espo_gcm_pkg.sv
espo_aes_pipe.sv
espo_gcm.sv
