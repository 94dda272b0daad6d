// espo_pkg: the ESPO-1 register map, DMA structures and codes.
// Generated from the espo-fpga crate; do not edit.
// Regenerate with: cargo run -p espo-fpga --bin espo-fpga-gen

package espo_pkg;

  // Most users need a few of these constants; the rest are unused by design.
  /* verilator lint_off UNUSEDPARAM */

  localparam int BAR0_BYTES = 8192;

  // Block IDENT: Identification: the start of the block chain.
  localparam logic [31:0] IDENT_BLOCK_TYPE = 32'h0000E501;
  localparam logic [31:0] IDENT_BASE = 32'h00000000;
  // Register offsets below are BAR0 offsets.
  localparam logic [31:0] IDENT_TYPE_OFFSET = 32'h00000000; // RO Block type.
  localparam logic [31:0] IDENT_TYPE_RESET = 32'h0000E501;
  localparam logic [31:0] IDENT_VERSION_OFFSET = 32'h00000004; // RO Block version, major << 16 | minor.
  localparam logic [31:0] IDENT_VERSION_RESET = 32'h00010000;
  localparam logic [31:0] IDENT_NEXT_OFFSET = 32'h00000008; // RO BAR0 offset of the next block, 0 at the end of the chain.
  localparam logic [31:0] IDENT_NEXT_RESET = 32'h00000100;
  localparam logic [31:0] IDENT_DEVICE_ID_OFFSET = 32'h00000010; // RO 0x4553504F ("ESPO").
  localparam logic [31:0] IDENT_DEVICE_ID_RESET = 32'h4553504F;
  localparam logic [31:0] IDENT_REVISION_OFFSET = 32'h00000014; // RO Hardware revision.
  localparam logic [31:0] IDENT_REVISION_RESET = 32'h00000001;
  localparam logic [31:0] IDENT_CLOCK_KHZ_OFFSET = 32'h00000018; // RO Core clock in kHz; cycle counts in this datasheet are of this clock.
  localparam logic [31:0] IDENT_CLOCK_KHZ_RESET = 32'h0003D090;
  localparam logic [31:0] IDENT_SCRATCH_OFFSET = 32'h0000001C; // RW Free for software; used to check BAR access.
  localparam logic [31:0] IDENT_SCRATCH_RESET = 32'h00000000;

  // Block CAP: Capabilities: what the card does in hardware.
  localparam logic [31:0] CAP_BLOCK_TYPE = 32'h0000E502;
  localparam logic [31:0] CAP_BASE = 32'h00000100;
  // Register offsets below are BAR0 offsets.
  localparam logic [31:0] CAP_TYPE_OFFSET = 32'h00000100; // RO Block type.
  localparam logic [31:0] CAP_TYPE_RESET = 32'h0000E502;
  localparam logic [31:0] CAP_VERSION_OFFSET = 32'h00000104; // RO Block version, major << 16 | minor.
  localparam logic [31:0] CAP_VERSION_RESET = 32'h00010000;
  localparam logic [31:0] CAP_NEXT_OFFSET = 32'h00000108; // RO BAR0 offset of the next block, 0 at the end of the chain.
  localparam logic [31:0] CAP_NEXT_RESET = 32'h00000200;
  localparam logic [31:0] CAP_CAP_ALGS_OFFSET = 32'h00000110; // RO Algorithms done in hardware (bit n = AlgId n).
  localparam logic [31:0] CAP_CAP_ALGS_RESET = 32'h00000006;
  localparam int CAP_CAP_ALGS_AES_GCM_128_LSB = 1; // AES-GCM-128, 16-byte ICV (RFC 4106).
  localparam int CAP_CAP_ALGS_AES_GCM_128_WIDTH = 1;
  localparam int CAP_CAP_ALGS_AES_GCM_256_LSB = 2; // AES-GCM-256, 16-byte ICV (RFC 4106).
  localparam int CAP_CAP_ALGS_AES_GCM_256_WIDTH = 1;
  localparam int CAP_CAP_ALGS_AES_CBC_128_LSB = 3; // AES-CBC-128 with HMAC: never set in ESPO-1.
  localparam int CAP_CAP_ALGS_AES_CBC_128_WIDTH = 1;
  localparam int CAP_CAP_ALGS_AES_CBC_256_LSB = 4; // AES-CBC-256 with HMAC: never set in ESPO-1.
  localparam int CAP_CAP_ALGS_AES_CBC_256_WIDTH = 1;
  localparam int CAP_CAP_ALGS_CHACHA20_POLY1305_LSB = 5; // ChaCha20-Poly1305 (RFC 7634): never set in ESPO-1.
  localparam int CAP_CAP_ALGS_CHACHA20_POLY1305_WIDTH = 1;
  localparam int CAP_CAP_ALGS_NULL_LSB = 6; // NULL encryption: never set in ESPO-1.
  localparam int CAP_CAP_ALGS_NULL_WIDTH = 1;
  localparam logic [31:0] CAP_CAP_FEATURES_OFFSET = 32'h00000114; // RO Features done in hardware.
  localparam logic [31:0] CAP_CAP_FEATURES_RESET = 32'h000003FF;
  localparam int CAP_CAP_FEATURES_OUTER_IPV4_LSB = 0; // IPv4 outer header.
  localparam int CAP_CAP_FEATURES_OUTER_IPV4_WIDTH = 1;
  localparam int CAP_CAP_FEATURES_OUTER_IPV6_LSB = 1; // IPv6 outer header.
  localparam int CAP_CAP_FEATURES_OUTER_IPV6_WIDTH = 1;
  localparam int CAP_CAP_FEATURES_INNER_IPV4_LSB = 2; // IPv4 inner packets.
  localparam int CAP_CAP_FEATURES_INNER_IPV4_WIDTH = 1;
  localparam int CAP_CAP_FEATURES_INNER_IPV6_LSB = 3; // IPv6 inner packets.
  localparam int CAP_CAP_FEATURES_INNER_IPV6_WIDTH = 1;
  localparam int CAP_CAP_FEATURES_UDP_ENCAP_LSB = 4; // ESP in UDP (RFC 3948).
  localparam int CAP_CAP_FEATURES_UDP_ENCAP_WIDTH = 1;
  localparam int CAP_CAP_FEATURES_ESN_LSB = 5; // 64-bit extended sequence numbers (RFC 4303).
  localparam int CAP_CAP_FEATURES_ESN_WIDTH = 1;
  localparam int CAP_CAP_FEATURES_ANTI_REPLAY_LSB = 6; // Hardware anti-replay window.
  localparam int CAP_CAP_FEATURES_ANTI_REPLAY_WIDTH = 1;
  localparam int CAP_CAP_FEATURES_LIFETIMES_LSB = 7; // Byte/packet lifetimes with soft/hard events.
  localparam int CAP_CAP_FEATURES_LIFETIMES_WIDTH = 1;
  localparam int CAP_CAP_FEATURES_SA_STATE_EXPORT_LSB = 8; // SA state read-back and import (live SA migration).
  localparam int CAP_CAP_FEATURES_SA_STATE_EXPORT_WIDTH = 1;
  localparam int CAP_CAP_FEATURES_INT_COALESCE_LSB = 9; // Interrupt coalescing.
  localparam int CAP_CAP_FEATURES_INT_COALESCE_WIDTH = 1;
  localparam int CAP_CAP_FEATURES_AH_LSB = 16; // AH (RFC 4302): never set in ESPO-1.
  localparam int CAP_CAP_FEATURES_AH_WIDTH = 1;
  localparam int CAP_CAP_FEATURES_BUNDLE_LSB = 17; // SA bundles (ESP+AH): never set in ESPO-1.
  localparam int CAP_CAP_FEATURES_BUNDLE_WIDTH = 1;
  localparam int CAP_CAP_FEATURES_TRANSPORT_LSB = 18; // Transport mode: never set in ESPO-1.
  localparam int CAP_CAP_FEATURES_TRANSPORT_WIDTH = 1;
  localparam logic [31:0] CAP_SA_TABLE_SIZE_OFFSET = 32'h00000118; // RO SA table entries (indices 0..n).
  localparam logic [31:0] CAP_SA_TABLE_SIZE_RESET = 32'h00001000;
  localparam logic [31:0] CAP_QUEUE_COUNT_OFFSET = 32'h0000011C; // RO Queue pairs (TX+RX), each with its own vector.
  localparam logic [31:0] CAP_QUEUE_COUNT_RESET = 32'h00000004;
  localparam logic [31:0] CAP_RING_SIZES_OFFSET = 32'h00000120; // RO Allowed ring sizes for every ring (admin, event, TX, RX, completion).
  localparam logic [31:0] CAP_RING_SIZES_RESET = 32'h00000F04;
  localparam int CAP_RING_SIZES_MIN_LOG2_LSB = 0; // Smallest ring, log2 entries.
  localparam int CAP_RING_SIZES_MIN_LOG2_WIDTH = 8;
  localparam int CAP_RING_SIZES_MAX_LOG2_LSB = 8; // Largest ring, log2 entries.
  localparam int CAP_RING_SIZES_MAX_LOG2_WIDTH = 8;
  localparam logic [31:0] CAP_REPLAY_WINDOW_MAX_OFFSET = 32'h00000124; // RO Largest anti-replay window, packets.
  localparam logic [31:0] CAP_REPLAY_WINDOW_MAX_RESET = 32'h00001000;
  localparam logic [31:0] CAP_MAX_FRAME_OFFSET = 32'h00000128; // RO Largest frame, bytes, without FCS.
  localparam logic [31:0] CAP_MAX_FRAME_RESET = 32'h00002400;
  localparam logic [31:0] CAP_ENGINES_OFFSET = 32'h0000012C; // RO Crypto engines (informative).
  localparam logic [31:0] CAP_ENGINES_RESET = 32'h00001004;
  localparam int CAP_ENGINES_COUNT_LSB = 0; // AES-GCM engines.
  localparam int CAP_ENGINES_COUNT_WIDTH = 8;
  localparam int CAP_ENGINES_BYTES_PER_CYCLE_LSB = 8; // Bytes per cycle of one engine.
  localparam int CAP_ENGINES_BYTES_PER_CYCLE_WIDTH = 8;

  // Block CTRL: Global control, status, error causes and fault record.
  localparam logic [31:0] CTRL_BLOCK_TYPE = 32'h0000E503;
  localparam logic [31:0] CTRL_BASE = 32'h00000200;
  // Register offsets below are BAR0 offsets.
  localparam logic [31:0] CTRL_TYPE_OFFSET = 32'h00000200; // RO Block type.
  localparam logic [31:0] CTRL_TYPE_RESET = 32'h0000E503;
  localparam logic [31:0] CTRL_VERSION_OFFSET = 32'h00000204; // RO Block version, major << 16 | minor.
  localparam logic [31:0] CTRL_VERSION_RESET = 32'h00010000;
  localparam logic [31:0] CTRL_NEXT_OFFSET = 32'h00000208; // RO BAR0 offset of the next block, 0 at the end of the chain.
  localparam logic [31:0] CTRL_NEXT_RESET = 32'h00000300;
  localparam logic [31:0] CTRL_CONTROL_OFFSET = 32'h00000210; // RW Global control.
  localparam logic [31:0] CTRL_CONTROL_RESET = 32'h00000000;
  localparam int CTRL_CONTROL_ENABLE_LSB = 0; // 1: start the admin and event queues (latches their registers).
  localparam int CTRL_CONTROL_ENABLE_WIDTH = 1;
  localparam int CTRL_CONTROL_RESET_LSB = 1; // Write 1: full reset (self-clearing, reads 0).
  localparam int CTRL_CONTROL_RESET_WIDTH = 1;
  localparam logic [31:0] CTRL_STATUS_OFFSET = 32'h00000214; // RO Global status.
  localparam logic [31:0] CTRL_STATUS_RESET = 32'h00000001;
  localparam int CTRL_STATUS_READY_LSB = 0; // Out of reset; registers may be written.
  localparam int CTRL_STATUS_READY_WIDTH = 1;
  localparam int CTRL_STATUS_ENABLED_LSB = 1; // CONTROL.ENABLE accepted; admin queue running.
  localparam int CTRL_STATUS_ENABLED_WIDTH = 1;
  localparam int CTRL_STATUS_FAULT_LSB = 2; // Datapath halted by a fatal fault; reset needed.
  localparam int CTRL_STATUS_FAULT_WIDTH = 1;
  localparam logic [31:0] CTRL_DRIVER_FEATURES_OFFSET = 32'h00000218; // RW Features the driver enables; must be a subset of CAP_FEATURES when ENABLE is set.
  localparam logic [31:0] CTRL_DRIVER_FEATURES_RESET = 32'h00000000;
  localparam int CTRL_DRIVER_FEATURES_OUTER_IPV4_LSB = 0; // IPv4 outer header.
  localparam int CTRL_DRIVER_FEATURES_OUTER_IPV4_WIDTH = 1;
  localparam int CTRL_DRIVER_FEATURES_OUTER_IPV6_LSB = 1; // IPv6 outer header.
  localparam int CTRL_DRIVER_FEATURES_OUTER_IPV6_WIDTH = 1;
  localparam int CTRL_DRIVER_FEATURES_INNER_IPV4_LSB = 2; // IPv4 inner packets.
  localparam int CTRL_DRIVER_FEATURES_INNER_IPV4_WIDTH = 1;
  localparam int CTRL_DRIVER_FEATURES_INNER_IPV6_LSB = 3; // IPv6 inner packets.
  localparam int CTRL_DRIVER_FEATURES_INNER_IPV6_WIDTH = 1;
  localparam int CTRL_DRIVER_FEATURES_UDP_ENCAP_LSB = 4; // ESP in UDP (RFC 3948).
  localparam int CTRL_DRIVER_FEATURES_UDP_ENCAP_WIDTH = 1;
  localparam int CTRL_DRIVER_FEATURES_ESN_LSB = 5; // 64-bit extended sequence numbers (RFC 4303).
  localparam int CTRL_DRIVER_FEATURES_ESN_WIDTH = 1;
  localparam int CTRL_DRIVER_FEATURES_ANTI_REPLAY_LSB = 6; // Hardware anti-replay window.
  localparam int CTRL_DRIVER_FEATURES_ANTI_REPLAY_WIDTH = 1;
  localparam int CTRL_DRIVER_FEATURES_LIFETIMES_LSB = 7; // Byte/packet lifetimes with soft/hard events.
  localparam int CTRL_DRIVER_FEATURES_LIFETIMES_WIDTH = 1;
  localparam int CTRL_DRIVER_FEATURES_SA_STATE_EXPORT_LSB = 8; // SA state read-back and import (live SA migration).
  localparam int CTRL_DRIVER_FEATURES_SA_STATE_EXPORT_WIDTH = 1;
  localparam int CTRL_DRIVER_FEATURES_INT_COALESCE_LSB = 9; // Interrupt coalescing.
  localparam int CTRL_DRIVER_FEATURES_INT_COALESCE_WIDTH = 1;
  localparam int CTRL_DRIVER_FEATURES_AH_LSB = 16; // AH (RFC 4302): never set in ESPO-1.
  localparam int CTRL_DRIVER_FEATURES_AH_WIDTH = 1;
  localparam int CTRL_DRIVER_FEATURES_BUNDLE_LSB = 17; // SA bundles (ESP+AH): never set in ESPO-1.
  localparam int CTRL_DRIVER_FEATURES_BUNDLE_WIDTH = 1;
  localparam int CTRL_DRIVER_FEATURES_TRANSPORT_LSB = 18; // Transport mode: never set in ESPO-1.
  localparam int CTRL_DRIVER_FEATURES_TRANSPORT_WIDTH = 1;
  localparam logic [31:0] CTRL_ERR_CAUSE_OFFSET = 32'h0000021C; // W1C Error causes.
  localparam logic [31:0] CTRL_ERR_CAUSE_RESET = 32'h00000000;
  localparam int CTRL_ERR_CAUSE_DMA_FAULT_LSB = 0; // A DMA was refused (IOMMU) or failed (PCIe).
  localparam int CTRL_ERR_CAUSE_DMA_FAULT_WIDTH = 1;
  localparam int CTRL_ERR_CAUSE_ENGINE_HANG_LSB = 1; // A crypto engine stopped; fatal.
  localparam int CTRL_ERR_CAUSE_ENGINE_HANG_WIDTH = 1;
  localparam int CTRL_ERR_CAUSE_ICV_ENGINE_LSB = 2; // The ICV unit reported an internal error.
  localparam int CTRL_ERR_CAUSE_ICV_ENGINE_WIDTH = 1;
  localparam int CTRL_ERR_CAUSE_CONFIG_LSB = 3; // ENABLE or Q_CTRL.ENABLE refused: bad ring setup or features.
  localparam int CTRL_ERR_CAUSE_CONFIG_WIDTH = 1;
  localparam int CTRL_ERR_CAUSE_EVENT_OVERFLOW_LSB = 4; // An event was lost: event queue full.
  localparam int CTRL_ERR_CAUSE_EVENT_OVERFLOW_WIDTH = 1;
  localparam logic [31:0] CTRL_FAULT_CODE_OFFSET = 32'h00000220; // RO First fault.
  localparam logic [31:0] CTRL_FAULT_CODE_RESET = 32'h00000000;
  localparam int CTRL_FAULT_CODE_CODE_LSB = 0; // FaultCode of the first fault since ERR_CAUSE was last clear.
  localparam int CTRL_FAULT_CODE_CODE_WIDTH = 8;
  localparam int CTRL_FAULT_CODE_UNIT_LSB = 8; // DmaUnit that faulted (DMA faults).
  localparam int CTRL_FAULT_CODE_UNIT_WIDTH = 8;
  localparam int CTRL_FAULT_CODE_QUEUE_LSB = 16; // Queue index, 0xFFFF for admin/event.
  localparam int CTRL_FAULT_CODE_QUEUE_WIDTH = 16;
  localparam logic [31:0] CTRL_RESET_COUNT_OFFSET = 32'h00000224; // RO Resets since power-on, including unrequested ones; not cleared by reset.
  localparam logic [31:0] CTRL_RESET_COUNT_RESET = 32'h00000000;
  localparam logic [31:0] CTRL_FAULT_ADDR_OFFSET = 32'h00000228; // RO IOVA of the first faulting DMA.
  localparam logic [63:0] CTRL_FAULT_ADDR_RESET = 64'h0000000000000000;
  localparam logic [31:0] CTRL_NATT_PORT_OFFSET = 32'h00000230; // RW UDP destination port recognised as ESP in UDP on receive (RFC 3948).
  localparam logic [31:0] CTRL_NATT_PORT_RESET = 32'h00001194;

  // Block IRQ: Interrupt vectors: mask, pending, coalescing.
  localparam logic [31:0] IRQ_BLOCK_TYPE = 32'h0000E504;
  localparam logic [31:0] IRQ_BASE = 32'h00000300;
  // Register offsets below are BAR0 offsets.
  localparam logic [31:0] IRQ_TYPE_OFFSET = 32'h00000300; // RO Block type.
  localparam logic [31:0] IRQ_TYPE_RESET = 32'h0000E504;
  localparam logic [31:0] IRQ_VERSION_OFFSET = 32'h00000304; // RO Block version, major << 16 | minor.
  localparam logic [31:0] IRQ_VERSION_RESET = 32'h00010000;
  localparam logic [31:0] IRQ_NEXT_OFFSET = 32'h00000308; // RO BAR0 offset of the next block, 0 at the end of the chain.
  localparam logic [31:0] IRQ_NEXT_RESET = 32'h00000400;
  localparam logic [31:0] IRQ_VECTOR_COUNT_OFFSET = 32'h00000310; // RO Interrupt vectors.
  localparam logic [31:0] IRQ_VECTOR_COUNT_RESET = 32'h00000005;
  localparam logic [31:0] IRQ_INT_MASK_OFFSET = 32'h00000314; // RW Bit v masks vector v. A masked vector sets its INT_PENDING bit instead of firing; unmasking fires it.
  localparam logic [31:0] IRQ_INT_MASK_RESET = 32'h0000001F;
  localparam logic [31:0] IRQ_INT_PENDING_OFFSET = 32'h00000318; // W1C Bit v: vector v is pending (masked when due).
  localparam logic [31:0] IRQ_INT_PENDING_RESET = 32'h00000000;
  localparam logic [31:0] IRQ_COAL_PACKETS_OFFSET = 32'h0000031C; // RW Queue vectors fire after this many unsignalled completions (0 and 1: every completion).
  localparam logic [31:0] IRQ_COAL_PACKETS_RESET = 32'h00000001;
  localparam logic [31:0] IRQ_COAL_CYCLES_OFFSET = 32'h00000320; // RW Queue vectors fire at most this many cycles after their first unsignalled completion (0: no timer).
  localparam logic [31:0] IRQ_COAL_CYCLES_RESET = 32'h00000000;

  // Block ADMIN: Admin queue: SA write, invalidate, read-back.
  localparam logic [31:0] ADMIN_BLOCK_TYPE = 32'h0000E505;
  localparam logic [31:0] ADMIN_BASE = 32'h00000400;
  // Register offsets below are BAR0 offsets.
  localparam logic [31:0] ADMIN_TYPE_OFFSET = 32'h00000400; // RO Block type.
  localparam logic [31:0] ADMIN_TYPE_RESET = 32'h0000E505;
  localparam logic [31:0] ADMIN_VERSION_OFFSET = 32'h00000404; // RO Block version, major << 16 | minor.
  localparam logic [31:0] ADMIN_VERSION_RESET = 32'h00010000;
  localparam logic [31:0] ADMIN_NEXT_OFFSET = 32'h00000408; // RO BAR0 offset of the next block, 0 at the end of the chain.
  localparam logic [31:0] ADMIN_NEXT_RESET = 32'h00000500;
  localparam logic [31:0] ADMIN_ASQ_BASE_OFFSET = 32'h00000410; // RW Admin submission ring IOVA (64-byte aligned).
  localparam logic [63:0] ADMIN_ASQ_BASE_RESET = 64'h0000000000000000;
  localparam logic [31:0] ADMIN_ASQ_LOG2_OFFSET = 32'h00000418; // RW Admin submission ring entries, log2.
  localparam logic [31:0] ADMIN_ASQ_LOG2_RESET = 32'h00000000;
  localparam logic [31:0] ADMIN_ASQ_TAIL_OFFSET = 32'h0000041C; // RW Doorbell: free-running producer index of the admin submission ring.
  localparam logic [31:0] ADMIN_ASQ_TAIL_RESET = 32'h00000000;
  localparam logic [31:0] ADMIN_ACQ_BASE_OFFSET = 32'h00000420; // RW Admin completion ring IOVA (64-byte aligned).
  localparam logic [63:0] ADMIN_ACQ_BASE_RESET = 64'h0000000000000000;
  localparam logic [31:0] ADMIN_ACQ_LOG2_OFFSET = 32'h00000428; // RW Admin completion ring entries, log2.
  localparam logic [31:0] ADMIN_ACQ_LOG2_RESET = 32'h00000000;
  localparam logic [31:0] ADMIN_ACQ_HEAD_OFFSET = 32'h0000042C; // RW Doorbell: free-running consumer index of the admin completion ring.
  localparam logic [31:0] ADMIN_ACQ_HEAD_RESET = 32'h00000000;
  localparam logic [31:0] ADMIN_ASQ_HEAD_OFFSET = 32'h00000430; // RO Card's consumer index of the admin submission ring (diagnostics; also in every admin completion).
  localparam logic [31:0] ADMIN_ASQ_HEAD_RESET = 32'h00000000;

  // Block EVENT: Event queue: lifetime, sequence, fault events.
  localparam logic [31:0] EVENT_BLOCK_TYPE = 32'h0000E506;
  localparam logic [31:0] EVENT_BASE = 32'h00000500;
  // Register offsets below are BAR0 offsets.
  localparam logic [31:0] EVENT_TYPE_OFFSET = 32'h00000500; // RO Block type.
  localparam logic [31:0] EVENT_TYPE_RESET = 32'h0000E506;
  localparam logic [31:0] EVENT_VERSION_OFFSET = 32'h00000504; // RO Block version, major << 16 | minor.
  localparam logic [31:0] EVENT_VERSION_RESET = 32'h00010000;
  localparam logic [31:0] EVENT_NEXT_OFFSET = 32'h00000508; // RO BAR0 offset of the next block, 0 at the end of the chain.
  localparam logic [31:0] EVENT_NEXT_RESET = 32'h00000600;
  localparam logic [31:0] EVENT_EQ_BASE_OFFSET = 32'h00000510; // RW Event ring IOVA (64-byte aligned).
  localparam logic [63:0] EVENT_EQ_BASE_RESET = 64'h0000000000000000;
  localparam logic [31:0] EVENT_EQ_LOG2_OFFSET = 32'h00000518; // RW Event ring entries, log2.
  localparam logic [31:0] EVENT_EQ_LOG2_RESET = 32'h00000000;
  localparam logic [31:0] EVENT_EQ_HEAD_OFFSET = 32'h0000051C; // RW Doorbell: free-running consumer index of the event ring.
  localparam logic [31:0] EVENT_EQ_HEAD_RESET = 32'h00000000;
  localparam logic [31:0] EVENT_EQ_DROPPED_OFFSET = 32'h00000520; // RO Events lost because the event ring was full.
  localparam logic [31:0] EVENT_EQ_DROPPED_RESET = 32'h00000000;

  // Block STATS: Frame, byte and drop-reason counters.
  localparam logic [31:0] STATS_BLOCK_TYPE = 32'h0000E507;
  localparam logic [31:0] STATS_BASE = 32'h00000600;
  // Register offsets below are BAR0 offsets.
  localparam logic [31:0] STATS_TYPE_OFFSET = 32'h00000600; // RO Block type.
  localparam logic [31:0] STATS_TYPE_RESET = 32'h0000E507;
  localparam logic [31:0] STATS_VERSION_OFFSET = 32'h00000604; // RO Block version, major << 16 | minor.
  localparam logic [31:0] STATS_VERSION_RESET = 32'h00010000;
  localparam logic [31:0] STATS_NEXT_OFFSET = 32'h00000608; // RO BAR0 offset of the next block, 0 at the end of the chain.
  localparam logic [31:0] STATS_NEXT_RESET = 32'h00000800;
  localparam logic [31:0] STATS_STAT_COUNT_OFFSET = 32'h00000610; // RO Number of counters.
  localparam logic [31:0] STATS_STAT_COUNT_RESET = 32'h0000001C;
  localparam logic [31:0] STATS_COUNTER0_OFFSET = 32'h00000640; // RO First of STAT_COUNT 64-bit counters; counter i (Counter code) at 0x40 + 8 * i. Cleared by reset only.
  localparam logic [63:0] STATS_COUNTER0_RESET = 64'h0000000000000000;

  // Block QUEUES: Directory of the queue-pair blocks.
  localparam logic [31:0] QUEUES_BLOCK_TYPE = 32'h0000E508;
  localparam logic [31:0] QUEUES_BASE = 32'h00000800;
  // Register offsets below are BAR0 offsets.
  localparam logic [31:0] QUEUES_TYPE_OFFSET = 32'h00000800; // RO Block type.
  localparam logic [31:0] QUEUES_TYPE_RESET = 32'h0000E508;
  localparam logic [31:0] QUEUES_VERSION_OFFSET = 32'h00000804; // RO Block version, major << 16 | minor.
  localparam logic [31:0] QUEUES_VERSION_RESET = 32'h00010000;
  localparam logic [31:0] QUEUES_NEXT_OFFSET = 32'h00000808; // RO BAR0 offset of the next block, 0 at the end of the chain.
  localparam logic [31:0] QUEUES_NEXT_RESET = 32'h00001000;
  localparam logic [31:0] QUEUES_Q_COUNT_OFFSET = 32'h00000810; // RO Queue pairs.
  localparam logic [31:0] QUEUES_Q_COUNT_RESET = 32'h00000004;
  localparam logic [31:0] QUEUES_Q_STRIDE_OFFSET = 32'h00000814; // RO Bytes between queue-pair blocks.
  localparam logic [31:0] QUEUES_Q_STRIDE_RESET = 32'h00000100;
  localparam logic [31:0] QUEUES_Q_BASE_OFFSET = 32'h00000818; // RO BAR0 offset of queue pair 0.
  localparam logic [31:0] QUEUES_Q_BASE_RESET = 32'h00001000;

  // Block QUEUE: One queue pair (instance q at Q_BASE + q * Q_STRIDE).
  localparam logic [31:0] QUEUE_BLOCK_TYPE = 32'h0000E509;
  localparam logic [31:0] QUEUE_BASE = 32'h00001000;
  localparam int QUEUE_INSTANCES = 4;
  localparam logic [31:0] QUEUE_STRIDE = 32'h00000100;
  // Register offsets below are relative to the instance base.
  localparam logic [31:0] QUEUE_TYPE_OFFSET = 32'h00000000; // RO Block type.
  localparam logic [31:0] QUEUE_TYPE_RESET = 32'h0000E509;
  localparam logic [31:0] QUEUE_VERSION_OFFSET = 32'h00000004; // RO Block version, major << 16 | minor.
  localparam logic [31:0] QUEUE_VERSION_RESET = 32'h00010000;
  localparam logic [31:0] QUEUE_NEXT_OFFSET = 32'h00000008; // RO BAR0 offset of the next block, 0 at the end of the chain.
  localparam logic [31:0] QUEUE_NEXT_RESET = 32'h00000000;
  localparam logic [31:0] QUEUE_TXQ_BASE_OFFSET = 32'h00000010; // RW TX descriptor ring IOVA.
  localparam logic [63:0] QUEUE_TXQ_BASE_RESET = 64'h0000000000000000;
  localparam logic [31:0] QUEUE_TXQ_LOG2_OFFSET = 32'h00000018; // RW TX descriptor ring entries, log2.
  localparam logic [31:0] QUEUE_TXQ_LOG2_RESET = 32'h00000000;
  localparam logic [31:0] QUEUE_TXQ_TAIL_OFFSET = 32'h0000001C; // RW Doorbell: free-running producer index of TX descriptors.
  localparam logic [31:0] QUEUE_TXQ_TAIL_RESET = 32'h00000000;
  localparam logic [31:0] QUEUE_TXCQ_BASE_OFFSET = 32'h00000020; // RW TX completion ring IOVA.
  localparam logic [63:0] QUEUE_TXCQ_BASE_RESET = 64'h0000000000000000;
  localparam logic [31:0] QUEUE_TXCQ_LOG2_OFFSET = 32'h00000028; // RW TX completion ring entries, log2.
  localparam logic [31:0] QUEUE_TXCQ_LOG2_RESET = 32'h00000000;
  localparam logic [31:0] QUEUE_TXCQ_HEAD_OFFSET = 32'h0000002C; // RW Doorbell: free-running consumer index of TX completions.
  localparam logic [31:0] QUEUE_TXCQ_HEAD_RESET = 32'h00000000;
  localparam logic [31:0] QUEUE_RXQ_BASE_OFFSET = 32'h00000030; // RW RX buffer ring IOVA.
  localparam logic [63:0] QUEUE_RXQ_BASE_RESET = 64'h0000000000000000;
  localparam logic [31:0] QUEUE_RXQ_LOG2_OFFSET = 32'h00000038; // RW RX buffer ring entries, log2.
  localparam logic [31:0] QUEUE_RXQ_LOG2_RESET = 32'h00000000;
  localparam logic [31:0] QUEUE_RXQ_TAIL_OFFSET = 32'h0000003C; // RW Doorbell: free-running producer index of RX buffers.
  localparam logic [31:0] QUEUE_RXQ_TAIL_RESET = 32'h00000000;
  localparam logic [31:0] QUEUE_RXCQ_BASE_OFFSET = 32'h00000040; // RW RX completion ring IOVA.
  localparam logic [63:0] QUEUE_RXCQ_BASE_RESET = 64'h0000000000000000;
  localparam logic [31:0] QUEUE_RXCQ_LOG2_OFFSET = 32'h00000048; // RW RX completion ring entries, log2.
  localparam logic [31:0] QUEUE_RXCQ_LOG2_RESET = 32'h00000000;
  localparam logic [31:0] QUEUE_RXCQ_HEAD_OFFSET = 32'h0000004C; // RW Doorbell: free-running consumer index of RX completions.
  localparam logic [31:0] QUEUE_RXCQ_HEAD_RESET = 32'h00000000;
  localparam logic [31:0] QUEUE_Q_CTRL_OFFSET = 32'h00000050; // RW Queue pair control.
  localparam logic [31:0] QUEUE_Q_CTRL_RESET = 32'h00000000;
  localparam int QUEUE_Q_CTRL_ENABLE_LSB = 0; // 1: start the queue pair (latches its ring registers); 0: stop.
  localparam int QUEUE_Q_CTRL_ENABLE_WIDTH = 1;
  localparam logic [31:0] QUEUE_Q_STATUS_OFFSET = 32'h00000054; // RO Queue pair status.
  localparam logic [31:0] QUEUE_Q_STATUS_RESET = 32'h00000004;
  localparam int QUEUE_Q_STATUS_ENABLED_LSB = 0; // Queue pair running.
  localparam int QUEUE_Q_STATUS_ENABLED_WIDTH = 1;
  localparam int QUEUE_Q_STATUS_ERROR_LSB = 1; // Stopped by a fault on one of its rings; disable, then re-enable.
  localparam int QUEUE_Q_STATUS_ERROR_WIDTH = 1;
  localparam int QUEUE_Q_STATUS_IDLE_LSB = 2; // No descriptor of this queue pair is in flight.
  localparam int QUEUE_Q_STATUS_IDLE_WIDTH = 1;
  localparam logic [31:0] QUEUE_TXQ_HEAD_OFFSET = 32'h00000058; // RO Card's consumer index of TX descriptors (diagnostics).
  localparam logic [31:0] QUEUE_TXQ_HEAD_RESET = 32'h00000000;
  localparam logic [31:0] QUEUE_RXQ_HEAD_OFFSET = 32'h0000005C; // RO Card's consumer index of RX buffers (diagnostics).
  localparam logic [31:0] QUEUE_RXQ_HEAD_RESET = 32'h00000000;

  // Status codes (admin completions, TX/RX verdicts)
  localparam logic [7:0] STATUS_OK = 8'd0; //  Success: TX sent / RX decapsulated / admin command done.
  localparam logic [7:0] STATUS_BYPASS = 8'd1; //  RX: not ESP (or a fragment, or ESP-in-UDP control traffic); delivered as received. TX: sent as posted.
  localparam logic [7:0] STATUS_NO_SA = 8'd2; //  RX: ESP with no valid inbound SA for its SPI and destination; delivered as received.
  localparam logic [7:0] STATUS_ICV_FAIL = 8'd3; //  RX: ICV check failed; delivered as received, SA counters unchanged.
  localparam logic [7:0] STATUS_REPLAY = 8'd4; //  RX: sequence number inside the replay window and already received; delivered as received.
  localparam logic [7:0] STATUS_MALFORMED = 8'd5; //  Frame or inner packet malformed (reason in the STATS counters); RX: delivered as received.
  localparam logic [7:0] STATUS_SA_INVALID = 8'd6; //  TX: SA index out of range, invalid, not outbound.
  localparam logic [7:0] STATUS_SA_EXPIRED = 8'd7; //  SA reached its hard byte/packet lifetime; not processed.
  localparam logic [7:0] STATUS_SEQ_EXHAUSTED = 8'd8; //  TX: the SA's sequence number space is used up; not sent.
  localparam logic [7:0] STATUS_TOO_BIG = 8'd9; //  Result larger than MAX_FRAME (TX) or than the RX buffer (RX: truncated to the buffer).
  localparam logic [7:0] STATUS_ENGINE_ERROR = 8'd10; //  An engine error hit this packet; TX: not sent (its sequence number is consumed); RX: delivered as received.
  localparam logic [7:0] STATUS_ECN_DROP = 8'd11; //  RX: inner ECN Not-ECT under an outer CE mark (RFC 6040); delivered as received.
  localparam logic [7:0] STATUS_STALE = 8'd12; //  RX: sequence number left of the replay window, or one that cannot exist (ESN inference before the first or past the last 2^32 subspace); delivered as received.
  localparam logic [7:0] STATUS_INVALID_OPCODE = 8'd16; //  Admin: unknown opcode.
  localparam logic [7:0] STATUS_INVALID_SA_INDEX = 8'd17; //  Admin: SA index not below SA_TABLE_SIZE.
  localparam logic [7:0] STATUS_ALG_UNSUPPORTED = 8'd18; //  Admin: the SA's algorithm is not in CAP_ALGS.
  localparam logic [7:0] STATUS_FEATURE_NOT_ENABLED = 8'd19; //  Admin: the SA needs a feature not enabled in DRIVER_FEATURES.
  localparam logic [7:0] STATUS_INVALID_FIELD = 8'd20; //  Admin: a field is out of range (window, key length, flags).
  localparam logic [7:0] STATUS_DATA_TOO_SHORT = 8'd21; //  Admin: data_len too small for the command.
  localparam logic [7:0] STATUS_DATA_DMA_FAULT = 8'd22; //  Admin: the command's data DMA faulted.

  // Event codes
  localparam logic [7:0] EVENT_LIFETIME_SOFT = 8'd1; //  An SA crossed its soft byte or packet lifetime (aux: 1 bytes, 2 packets).
  localparam logic [7:0] EVENT_LIFETIME_HARD = 8'd2; //  An SA reached its hard byte or packet lifetime and stopped (aux: 1 bytes, 2 packets).
  localparam logic [7:0] EVENT_SEQ_EXHAUSTED = 8'd3; //  An outbound SA sent sequence number 2^32-1 (2^64-1 with ESN) and stopped: hard expiry by sequence number.
  localparam logic [7:0] EVENT_DMA_FAULT = 8'd4; //  A DMA was refused or failed (detail: IOVA; index: queue or 0xFFFFFFFF; aux: DmaUnit).
  localparam logic [7:0] EVENT_ENGINE_HANG = 8'd5; //  A crypto engine hung; the datapath halted (detail: engine).
  localparam logic [7:0] EVENT_ICV_ENGINE_ERROR = 8'd6; //  The ICV unit reported an error on a packet of an SA (index: SA).
  localparam logic [7:0] EVENT_QUEUE_STOPPED = 8'd7; //  A queue pair stopped on a fault (index: queue).

  // Fault codes
  localparam logic [7:0] FAULT_NONE = 8'd0; //  No fault recorded.
  localparam logic [7:0] FAULT_DMA_UNMAPPED = 8'd1; //  DMA outside every IOMMU window.
  localparam logic [7:0] FAULT_DMA_ERROR = 8'd2; //  DMA failed on PCIe (completion error, poisoned data).
  localparam logic [7:0] FAULT_ENGINE_HANG = 8'd3; //  A crypto engine stopped responding; datapath halted.
  localparam logic [7:0] FAULT_ICV_ENGINE = 8'd4; //  The ICV unit reported an internal error.
  localparam logic [7:0] FAULT_CONFIG = 8'd5; //  Ring configuration refused at ENABLE.

  // DMA units
  localparam logic [7:0] DMA_UNIT_TX_DESC_READ = 8'd1; //  TX descriptor fetch.
  localparam logic [7:0] DMA_UNIT_TX_DATA_READ = 8'd2; //  TX packet data fetch.
  localparam logic [7:0] DMA_UNIT_TX_CPL_WRITE = 8'd3; //  TX completion write.
  localparam logic [7:0] DMA_UNIT_RX_DESC_READ = 8'd4; //  RX buffer descriptor fetch.
  localparam logic [7:0] DMA_UNIT_RX_DATA_WRITE = 8'd5; //  RX packet data write.
  localparam logic [7:0] DMA_UNIT_RX_CPL_WRITE = 8'd6; //  RX completion write.
  localparam logic [7:0] DMA_UNIT_ADMIN_CMD_READ = 8'd7; //  Admin command fetch.
  localparam logic [7:0] DMA_UNIT_ADMIN_DATA = 8'd8; //  Admin command data read or write.
  localparam logic [7:0] DMA_UNIT_ADMIN_CPL_WRITE = 8'd9; //  Admin completion write.
  localparam logic [7:0] DMA_UNIT_EVENT_WRITE = 8'd10; //  Event entry write.

  // Algorithms
  localparam logic [7:0] ALG_AES_GCM_128 = 8'd1; //  AES-GCM with a 128-bit key, 16-byte ICV (RFC 4106).
  localparam logic [7:0] ALG_AES_GCM_256 = 8'd2; //  AES-GCM with a 256-bit key, 16-byte ICV (RFC 4106).
  localparam logic [7:0] ALG_AES_CBC_128 = 8'd3; //  AES-CBC-128 with HMAC (software only).
  localparam logic [7:0] ALG_AES_CBC_256 = 8'd4; //  AES-CBC-256 with HMAC (software only).
  localparam logic [7:0] ALG_CHACHA20_POLY1305 = 8'd5; //  ChaCha20-Poly1305 (software only).
  localparam logic [7:0] ALG_NULL = 8'd6; //  NULL encryption (software only).

  // Outer IPv4 DF modes
  localparam logic [7:0] DF_COPY = 8'd0; //  Copied from an IPv4 inner packet; set for an IPv6 inner packet.
  localparam logic [7:0] DF_SET = 8'd1; //  Always set.
  localparam logic [7:0] DF_CLEAR = 8'd2; //  Always clear.

  // Admin opcodes
  localparam logic [7:0] ADMIN_OP_NOP = 8'd0; //  No operation; completes with Ok.
  localparam logic [7:0] ADMIN_OP_SA_WRITE = 8'd1; //  Write an SA table entry (data: SA_ENTRY, then SA_STATE with IMPORT_STATE).
  localparam logic [7:0] ADMIN_OP_SA_INVALIDATE = 8'd2; //  Invalidate an SA entry (with EXPORT_STATE: its final SA_STATE is written to data first).
  localparam logic [7:0] ADMIN_OP_SA_READ = 8'd3; //  Read back an SA's state (data: SA_STATE written by the card).

  // Counter indices of the STATS block
  localparam logic [7:0] COUNTER_RX_FRAMES = 8'd0; //  Frames received on the port.
  localparam logic [7:0] COUNTER_RX_BYTES = 8'd1; //  Bytes received on the port (without FCS).
  localparam logic [7:0] COUNTER_TX_FRAMES = 8'd2; //  Frames sent on the port.
  localparam logic [7:0] COUNTER_TX_BYTES = 8'd3; //  Bytes sent on the port (without FCS).
  localparam logic [7:0] COUNTER_RX_DECAP_OK = 8'd4; //  Packets decapsulated and delivered.
  localparam logic [7:0] COUNTER_TX_ENCAP_OK = 8'd5; //  Packets encapsulated and sent.
  localparam logic [7:0] COUNTER_RX_BYPASS = 8'd6; //  Frames delivered as bypass.
  localparam logic [7:0] COUNTER_RX_NO_SA = 8'd7; //  ESP frames with no inbound SA.
  localparam logic [7:0] COUNTER_RX_ICV_FAIL = 8'd8; //  ICV failures.
  localparam logic [7:0] COUNTER_RX_REPLAY = 8'd9; //  Replayed or stale (left of the window) sequence numbers.
  localparam logic [7:0] COUNTER_RX_RUNT = 8'd10; //  Runt frames (shorter than an Ethernet header).
  localparam logic [7:0] COUNTER_RX_BAD_OUTER_IP = 8'd11; //  Outer IP header malformed (bad version, header length, total length).
  localparam logic [7:0] COUNTER_RX_BAD_ESP = 8'd12; //  ESP (or UDP) shorter than header, IV and ICV.
  localparam logic [7:0] COUNTER_RX_BAD_TRAILER = 8'd13; //  Padding, pad length or next header wrong after decryption.
  localparam logic [7:0] COUNTER_RX_BAD_INNER = 8'd14; //  Inner packet malformed after decryption.
  localparam logic [7:0] COUNTER_RX_TOO_BIG = 8'd15; //  Inner packet larger than the RX buffer (truncated).
  localparam logic [7:0] COUNTER_RX_OVERSIZE = 8'd16; //  Frames longer than MAX_FRAME.
  localparam logic [7:0] COUNTER_RX_ECN_DROP = 8'd17; //  Inner Not-ECT under outer CE (RFC 6040).
  localparam logic [7:0] COUNTER_RX_EXPIRED = 8'd18; //  Inbound SA past its hard lifetime.
  localparam logic [7:0] COUNTER_TX_SA_INVALID = 8'd19; //  TX descriptors naming a bad SA.
  localparam logic [7:0] COUNTER_TX_MALFORMED = 8'd20; //  TX frames malformed (no IP header, bad length, wrong inner version).
  localparam logic [7:0] COUNTER_TX_SEQ_EXHAUSTED = 8'd21; //  TX packets refused: sequence numbers used up.
  localparam logic [7:0] COUNTER_TX_EXPIRED = 8'd22; //  TX packets refused: hard lifetime.
  localparam logic [7:0] COUNTER_TX_TOO_BIG = 8'd23; //  TX results larger than MAX_FRAME.
  localparam logic [7:0] COUNTER_ENGINE_ERRORS = 8'd24; //  Packets hit by an engine error.
  localparam logic [7:0] COUNTER_DMA_FAULTS = 8'd25; //  DMA faults.
  localparam logic [7:0] COUNTER_RX_PAUSE_CYCLES = 8'd26; //  Cycles the port asserted flow control because no RX buffer was free.
  localparam logic [7:0] COUNTER_RX_NO_QUEUE = 8'd27; //  Frames dropped because their queue pair (or the card) is not enabled.

  // TX_DESC: 16 bytes. Byte i of the little-endian memory image is bits [8i+7:8i].
  localparam int TX_DESC_SIZE_BYTES = 16;
  localparam int TX_DESC_ADDR_LSB = 0;
  localparam int TX_DESC_ADDR_WIDTH = 64;
  localparam int TX_DESC_LEN_LSB = 64;
  localparam int TX_DESC_LEN_WIDTH = 16;
  localparam int TX_DESC_BYPASS_LSB = 80;
  localparam int TX_DESC_BYPASS_WIDTH = 1;
  localparam int TX_DESC_RSVD0_LSB = 81;
  localparam int TX_DESC_RSVD0_WIDTH = 7;
  localparam int TX_DESC_RSVD1_LSB = 88;
  localparam int TX_DESC_RSVD1_WIDTH = 8;
  localparam int TX_DESC_SA_INDEX_LSB = 96;
  localparam int TX_DESC_SA_INDEX_WIDTH = 32;
  typedef struct packed {
    logic [31:0] sa_index; // Outbound SA (ignored with BYPASS).
    logic [7:0] rsvd1; // Reserved, 0.
    logic [6:0] rsvd0; // Reserved, 0.
    logic bypass; // Send the frame as posted (no ESP).
    logic [15:0] len; // Frame length, bytes.
    logic [63:0] addr; // IOVA of the frame: Ethernet header, then the inner IP packet.
  } tx_desc_t;

  // TX_CPL: 16 bytes. Byte i of the little-endian memory image is bits [8i+7:8i].
  localparam int TX_CPL_SIZE_BYTES = 16;
  localparam int TX_CPL_SEQ_LSB = 0;
  localparam int TX_CPL_SEQ_WIDTH = 64;
  localparam int TX_CPL_SA_INDEX_LSB = 64;
  localparam int TX_CPL_SA_INDEX_WIDTH = 32;
  localparam int TX_CPL_DESC_INDEX_LSB = 96;
  localparam int TX_CPL_DESC_INDEX_WIDTH = 16;
  localparam int TX_CPL_STATUS_LSB = 112;
  localparam int TX_CPL_STATUS_WIDTH = 8;
  localparam int TX_CPL_RSVD_LSB = 120;
  localparam int TX_CPL_RSVD_WIDTH = 7;
  localparam int TX_CPL_PHASE_LSB = 127;
  localparam int TX_CPL_PHASE_WIDTH = 1;
  typedef struct packed {
    logic phase; // Phase bit.
    logic [6:0] rsvd; // Reserved, 0.
    logic [7:0] status; // Status code.
    logic [15:0] desc_index; // Low 16 bits of the descriptor's free-running index.
    logic [31:0] sa_index; // SA index from the descriptor.
    logic [63:0] seq; // Sequence number assigned (64-bit; low 32 bits on the wire without ESN); 0 if none.
  } tx_cpl_t;

  // RX_DESC: 16 bytes. Byte i of the little-endian memory image is bits [8i+7:8i].
  localparam int RX_DESC_SIZE_BYTES = 16;
  localparam int RX_DESC_ADDR_LSB = 0;
  localparam int RX_DESC_ADDR_WIDTH = 64;
  localparam int RX_DESC_LEN_LSB = 64;
  localparam int RX_DESC_LEN_WIDTH = 32;
  localparam int RX_DESC_RSVD_LSB = 96;
  localparam int RX_DESC_RSVD_WIDTH = 32;
  typedef struct packed {
    logic [31:0] rsvd; // Reserved, 0.
    logic [31:0] len; // Buffer length, bytes.
    logic [63:0] addr; // IOVA of the receive buffer.
  } rx_desc_t;

  // RX_CPL: 32 bytes. Byte i of the little-endian memory image is bits [8i+7:8i].
  localparam int RX_CPL_SIZE_BYTES = 32;
  localparam int RX_CPL_SEQ_LSB = 0;
  localparam int RX_CPL_SEQ_WIDTH = 64;
  localparam int RX_CPL_SA_INDEX_LSB = 64;
  localparam int RX_CPL_SA_INDEX_WIDTH = 32;
  localparam int RX_CPL_SPI_LSB = 96;
  localparam int RX_CPL_SPI_WIDTH = 32;
  localparam int RX_CPL_LEN_LSB = 128;
  localparam int RX_CPL_LEN_WIDTH = 16;
  localparam int RX_CPL_DESC_INDEX_LSB = 144;
  localparam int RX_CPL_DESC_INDEX_WIDTH = 16;
  localparam int RX_CPL_STATUS_LSB = 160;
  localparam int RX_CPL_STATUS_WIDTH = 8;
  localparam int RX_CPL_DECAPSULATED_LSB = 168;
  localparam int RX_CPL_DECAPSULATED_WIDTH = 1;
  localparam int RX_CPL_INNER_IPV6_LSB = 169;
  localparam int RX_CPL_INNER_IPV6_WIDTH = 1;
  localparam int RX_CPL_UDP_ENCAP_LSB = 170;
  localparam int RX_CPL_UDP_ENCAP_WIDTH = 1;
  localparam int RX_CPL_TRUNCATED_LSB = 171;
  localparam int RX_CPL_TRUNCATED_WIDTH = 1;
  localparam int RX_CPL_RSVD0_LSB = 172;
  localparam int RX_CPL_RSVD0_WIDTH = 4;
  localparam int RX_CPL_WIRE_LEN_LSB = 176;
  localparam int RX_CPL_WIRE_LEN_WIDTH = 16;
  localparam int RX_CPL_RSVD1_LSB = 192;
  localparam int RX_CPL_RSVD1_WIDTH = 56;
  localparam int RX_CPL_RSVD2_LSB = 248;
  localparam int RX_CPL_RSVD2_WIDTH = 7;
  localparam int RX_CPL_PHASE_LSB = 255;
  localparam int RX_CPL_PHASE_WIDTH = 1;
  typedef struct packed {
    logic phase; // Phase bit.
    logic [6:0] rsvd2; // Reserved, 0.
    logic [55:0] rsvd1; // Reserved, 0.
    logic [15:0] wire_len; // Length of the frame as received, bytes.
    logic [3:0] rsvd0; // Reserved, 0.
    logic truncated; // Buffer too small: the data is cut at LEN.
    logic udp_encap; // Arrived as ESP in UDP.
    logic inner_ipv6; // Inner packet is IPv6.
    logic decapsulated; // Buffer holds the decapsulated inner packet.
    logic [7:0] status; // Status (verdict) code.
    logic [15:0] desc_index; // Low 16 bits of the RX buffer's free-running index.
    logic [15:0] len; // Bytes written to the buffer.
    logic [31:0] spi; // SPI of an ESP frame, 0 otherwise.
    logic [31:0] sa_index; // Inbound SA, 0xFFFFFFFF if none.
    logic [63:0] seq; // ESP sequence number (64-bit, ESN inferred); 0 if not ESP.
  } rx_cpl_t;

  // ADMIN_CMD: 64 bytes. Byte i of the little-endian memory image is bits [8i+7:8i].
  localparam int ADMIN_CMD_SIZE_BYTES = 64;
  localparam int ADMIN_CMD_OPCODE_LSB = 0;
  localparam int ADMIN_CMD_OPCODE_WIDTH = 8;
  localparam int ADMIN_CMD_STATE_LSB = 8;
  localparam int ADMIN_CMD_STATE_WIDTH = 1;
  localparam int ADMIN_CMD_RSVD0_LSB = 9;
  localparam int ADMIN_CMD_RSVD0_WIDTH = 7;
  localparam int ADMIN_CMD_CID_LSB = 16;
  localparam int ADMIN_CMD_CID_WIDTH = 16;
  localparam int ADMIN_CMD_SA_INDEX_LSB = 32;
  localparam int ADMIN_CMD_SA_INDEX_WIDTH = 32;
  localparam int ADMIN_CMD_DATA_ADDR_LSB = 64;
  localparam int ADMIN_CMD_DATA_ADDR_WIDTH = 64;
  localparam int ADMIN_CMD_DATA_LEN_LSB = 128;
  localparam int ADMIN_CMD_DATA_LEN_WIDTH = 32;
  localparam int ADMIN_CMD_RSVD1_LSB = 160;
  localparam int ADMIN_CMD_RSVD1_WIDTH = 352;
  typedef struct packed {
    logic [351:0] rsvd1; // Reserved, 0.
    logic [31:0] data_len; // Length of the data buffer, bytes.
    logic [63:0] data_addr; // IOVA of the command's data buffer.
    logic [31:0] sa_index; // SA table index.
    logic [15:0] cid; // Command identifier, echoed in the completion.
    logic [6:0] rsvd0; // Reserved, 0.
    logic state; // SA_WRITE: import the SA_STATE that follows the SA_ENTRY. SA_INVALIDATE: export SA_STATE first.
    logic [7:0] opcode; // AdminOpcode.
  } admin_cmd_t;

  // ADMIN_CPL: 16 bytes. Byte i of the little-endian memory image is bits [8i+7:8i].
  localparam int ADMIN_CPL_SIZE_BYTES = 16;
  localparam int ADMIN_CPL_RESULT_LSB = 0;
  localparam int ADMIN_CPL_RESULT_WIDTH = 64;
  localparam int ADMIN_CPL_CID_LSB = 64;
  localparam int ADMIN_CPL_CID_WIDTH = 16;
  localparam int ADMIN_CPL_SQ_HEAD_LSB = 80;
  localparam int ADMIN_CPL_SQ_HEAD_WIDTH = 16;
  localparam int ADMIN_CPL_STATUS_LSB = 96;
  localparam int ADMIN_CPL_STATUS_WIDTH = 8;
  localparam int ADMIN_CPL_RSVD0_LSB = 104;
  localparam int ADMIN_CPL_RSVD0_WIDTH = 16;
  localparam int ADMIN_CPL_RSVD1_LSB = 120;
  localparam int ADMIN_CPL_RSVD1_WIDTH = 7;
  localparam int ADMIN_CPL_PHASE_LSB = 127;
  localparam int ADMIN_CPL_PHASE_WIDTH = 1;
  typedef struct packed {
    logic phase; // Phase bit.
    logic [6:0] rsvd1; // Reserved, 0.
    logic [15:0] rsvd0; // Reserved, 0.
    logic [7:0] status; // Status code.
    logic [15:0] sq_head; // Low 16 bits of the card's admin submission consumer index.
    logic [15:0] cid; // CID of the command.
    logic [63:0] result; // Command result (SA_READ, SA_INVALIDATE: the SA's SEQ).
  } admin_cpl_t;

  // EVENT: 16 bytes. Byte i of the little-endian memory image is bits [8i+7:8i].
  localparam int EVENT_SIZE_BYTES = 16;
  localparam int EVENT_DETAIL_LSB = 0;
  localparam int EVENT_DETAIL_WIDTH = 64;
  localparam int EVENT_INDEX_LSB = 64;
  localparam int EVENT_INDEX_WIDTH = 32;
  localparam int EVENT_CODE_LSB = 96;
  localparam int EVENT_CODE_WIDTH = 8;
  localparam int EVENT_AUX_LSB = 104;
  localparam int EVENT_AUX_WIDTH = 8;
  localparam int EVENT_RSVD0_LSB = 112;
  localparam int EVENT_RSVD0_WIDTH = 8;
  localparam int EVENT_RSVD1_LSB = 120;
  localparam int EVENT_RSVD1_WIDTH = 7;
  localparam int EVENT_PHASE_LSB = 127;
  localparam int EVENT_PHASE_WIDTH = 1;
  typedef struct packed {
    logic phase; // Phase bit.
    logic [6:0] rsvd1; // Reserved, 0.
    logic [7:0] rsvd0; // Reserved, 0.
    logic [7:0] aux; // Code-specific: lifetime kind bits, DmaUnit.
    logic [7:0] code; // EventCode.
    logic [31:0] index; // SA index or queue index.
    logic [63:0] detail; // Event detail (IOVA, sequence number, engine).
  } event_t;

  // SA_ENTRY: 128 bytes. Byte i of the little-endian memory image is bits [8i+7:8i].
  localparam int SA_ENTRY_SIZE_BYTES = 128;
  localparam int SA_ENTRY_OUTBOUND_LSB = 0;
  localparam int SA_ENTRY_OUTBOUND_WIDTH = 1;
  localparam int SA_ENTRY_OUTER_IPV6_LSB = 1;
  localparam int SA_ENTRY_OUTER_IPV6_WIDTH = 1;
  localparam int SA_ENTRY_ESN_LSB = 2;
  localparam int SA_ENTRY_ESN_WIDTH = 1;
  localparam int SA_ENTRY_UDP_ENCAP_LSB = 3;
  localparam int SA_ENTRY_UDP_ENCAP_WIDTH = 1;
  localparam int SA_ENTRY_DF_MODE_LSB = 4;
  localparam int SA_ENTRY_DF_MODE_WIDTH = 2;
  localparam int SA_ENTRY_RSVD0_LSB = 6;
  localparam int SA_ENTRY_RSVD0_WIDTH = 2;
  localparam int SA_ENTRY_RSVD1_LSB = 8;
  localparam int SA_ENTRY_RSVD1_WIDTH = 24;
  localparam int SA_ENTRY_SPI_LSB = 32;
  localparam int SA_ENTRY_SPI_WIDTH = 32;
  localparam int SA_ENTRY_ALG_LSB = 64;
  localparam int SA_ENTRY_ALG_WIDTH = 8;
  localparam int SA_ENTRY_TTL_LSB = 72;
  localparam int SA_ENTRY_TTL_WIDTH = 8;
  localparam int SA_ENTRY_RX_QUEUE_LSB = 80;
  localparam int SA_ENTRY_RX_QUEUE_WIDTH = 16;
  localparam int SA_ENTRY_REPLAY_WINDOW_LSB = 96;
  localparam int SA_ENTRY_REPLAY_WINDOW_WIDTH = 32;
  localparam int SA_ENTRY_KEY_LSB = 128;
  localparam int SA_ENTRY_KEY_WIDTH = 256;
  localparam int SA_ENTRY_SALT_LSB = 384;
  localparam int SA_ENTRY_SALT_WIDTH = 32;
  localparam int SA_ENTRY_UDP_SRC_PORT_LSB = 416;
  localparam int SA_ENTRY_UDP_SRC_PORT_WIDTH = 16;
  localparam int SA_ENTRY_UDP_DST_PORT_LSB = 432;
  localparam int SA_ENTRY_UDP_DST_PORT_WIDTH = 16;
  localparam int SA_ENTRY_SRC_ADDR_LSB = 448;
  localparam int SA_ENTRY_SRC_ADDR_WIDTH = 128;
  localparam int SA_ENTRY_DST_ADDR_LSB = 576;
  localparam int SA_ENTRY_DST_ADDR_WIDTH = 128;
  localparam int SA_ENTRY_SEQ_LSB = 704;
  localparam int SA_ENTRY_SEQ_WIDTH = 64;
  localparam int SA_ENTRY_SOFT_BYTES_LSB = 768;
  localparam int SA_ENTRY_SOFT_BYTES_WIDTH = 64;
  localparam int SA_ENTRY_HARD_BYTES_LSB = 832;
  localparam int SA_ENTRY_HARD_BYTES_WIDTH = 64;
  localparam int SA_ENTRY_SOFT_PACKETS_LSB = 896;
  localparam int SA_ENTRY_SOFT_PACKETS_WIDTH = 64;
  localparam int SA_ENTRY_HARD_PACKETS_LSB = 960;
  localparam int SA_ENTRY_HARD_PACKETS_WIDTH = 64;
  typedef struct packed {
    logic [63:0] hard_packets; // Hard packet lifetime, 0: none.
    logic [63:0] soft_packets; // Soft packet lifetime, 0: none.
    logic [63:0] hard_bytes; // Hard byte lifetime, 0: none.
    logic [63:0] soft_bytes; // Soft byte lifetime, 0: none.
    logic [63:0] seq; // Outbound: last sequence number used; the next packet carries SEQ + 1.
    logic [127:0] dst_addr; // Outer destination address (inbound: matched with the SPI).
    logic [127:0] src_addr; // Outer source address (tunnel local end for outbound).
    logic [15:0] udp_dst_port; // UDP destination port (outbound, UDP_ENCAP).
    logic [15:0] udp_src_port; // UDP source port (outbound, UDP_ENCAP).
    logic [31:0] salt; // RFC 4106 salt (the 4 bytes after the key).
    logic [255:0] key; // AES key: 16 bytes (AES-GCM-128, rest 0) or 32 bytes.
    logic [31:0] replay_window; // Inbound: anti-replay window, packets; 0 disables.
    logic [15:0] rx_queue; // Inbound: queue pair that receives the decapsulated packets.
    logic [7:0] ttl; // Outer TTL / hop limit; 0 means 64.
    logic [7:0] alg; // AlgId.
    logic [31:0] spi; // SPI (numeric value).
    logic [23:0] rsvd1; // Reserved, 0.
    logic [1:0] rsvd0; // Reserved, 0.
    logic [1:0] df_mode; // Outbound, outer IPv4: DF bit, DfMode (0 copy, 1 set, 2 clear; 3 refused).
    logic udp_encap; // ESP in UDP (RFC 3948) with the ports below.
    logic esn; // 64-bit extended sequence numbers.
    logic outer_ipv6; // Outer header is IPv6 (addresses are 16 bytes).
    logic outbound; // 1: outbound (encapsulate), 0: inbound (decapsulate).
  } sa_entry_t;

  // SA_STATE: 576 bytes. Byte i of the little-endian memory image is bits [8i+7:8i].
  localparam int SA_STATE_SIZE_BYTES = 576;
  localparam int SA_STATE_SEQ_LSB = 0;
  localparam int SA_STATE_SEQ_WIDTH = 64;
  localparam int SA_STATE_BYTES_LSB = 64;
  localparam int SA_STATE_BYTES_WIDTH = 64;
  localparam int SA_STATE_PACKETS_LSB = 128;
  localparam int SA_STATE_PACKETS_WIDTH = 64;
  localparam int SA_STATE_REPLAY_DROPS_LSB = 192;
  localparam int SA_STATE_REPLAY_DROPS_WIDTH = 32;
  localparam int SA_STATE_ICV_FAILURES_LSB = 224;
  localparam int SA_STATE_ICV_FAILURES_WIDTH = 32;
  localparam int SA_STATE_VALID_LSB = 256;
  localparam int SA_STATE_VALID_WIDTH = 1;
  localparam int SA_STATE_SOFT_EXPIRED_LSB = 257;
  localparam int SA_STATE_SOFT_EXPIRED_WIDTH = 1;
  localparam int SA_STATE_HARD_EXPIRED_LSB = 258;
  localparam int SA_STATE_HARD_EXPIRED_WIDTH = 1;
  localparam int SA_STATE_SEQ_EXHAUSTED_LSB = 259;
  localparam int SA_STATE_SEQ_EXHAUSTED_WIDTH = 1;
  localparam int SA_STATE_RSVD0_LSB = 260;
  localparam int SA_STATE_RSVD0_WIDTH = 4;
  localparam int SA_STATE_RSVD1_LSB = 264;
  localparam int SA_STATE_RSVD1_WIDTH = 24;
  localparam int SA_STATE_WINDOW_LSB = 288;
  localparam int SA_STATE_WINDOW_WIDTH = 32;
  localparam int SA_STATE_RSVD2_LSB = 320;
  localparam int SA_STATE_RSVD2_WIDTH = 192;
  localparam int SA_STATE_BITMAP_LSB = 512;
  localparam int SA_STATE_BITMAP_WIDTH = 4096;
  typedef struct packed {
    logic [4095:0] bitmap; // Inbound: bit i (byte i/8, bit i%8) set when SEQ - i was received, for i < WINDOW.
    logic [191:0] rsvd2; // Reserved, 0.
    logic [31:0] window; // Inbound: replay window size, packets.
    logic [23:0] rsvd1; // Reserved, 0.
    logic [3:0] rsvd0; // Reserved, 0.
    logic seq_exhausted; // Outbound: last sequence number sent.
    logic hard_expired; // Hard lifetime reached; the SA processes nothing.
    logic soft_expired; // Soft lifetime crossed.
    logic valid; // The entry is valid.
    logic [31:0] icv_failures; // Inbound: ICV failures.
    logic [31:0] replay_drops; // Inbound: packets refused by the replay window.
    logic [63:0] packets; // Packets processed.
    logic [63:0] bytes; // Inner-packet bytes processed.
    logic [63:0] seq; // Outbound: last sequence number used (64 bits incl. ESN high half). Inbound: highest authenticated sequence number.
  } sa_state_t;

  /* verilator lint_on UNUSEDPARAM */
endpackage

// Lint anchor: gives `verilator --lint-only -Wall espo_pkg.sv` a top module that
// elaborates the package. Designs using the package select their own top.
/* verilator lint_off DECLFILENAME */
module espo_pkg_lint (
  output logic [31:0] device_id
);
  assign device_id = espo_pkg::IDENT_DEVICE_ID_RESET;
endmodule
/* verilator lint_on DECLFILENAME */
