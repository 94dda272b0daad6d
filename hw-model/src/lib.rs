//! espo-model: a cycle-level model of the ESPO-1 card, driven only through BAR0 and DMA.
#![forbid(unsafe_code)]
