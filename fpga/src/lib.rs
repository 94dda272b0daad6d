//! espo-fpga: the ESPO-1 card's hardware/software contract — register map, descriptor,
//! completion and SA-entry layouts, capability bits. The single source of truth; the
//! SystemVerilog package and the datasheet's register tables are generated from it.
#![forbid(unsafe_code)]
