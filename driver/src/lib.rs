//! espo-driver: the userspace driver for the ESPO-1 card, over VFIO or the card model.
