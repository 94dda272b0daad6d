//! The SystemVerilog package `espo_pkg`: register offsets and reset values, field
//! positions and widths, codes, and one packed struct per DMA structure.

use super::upper_snake;
use crate::codes::{AdminOpcode, AlgId, Counter, DfMode, DmaUnit, EventCode, FaultCode, Status};
use crate::layout::Layout;
use crate::regs::{self, BLOCKS};
use std::fmt::Write;

fn hex(bits: u32, v: u64) -> String {
    format!("{bits}'h{v:0w$X}", w = bits.div_ceil(4) as usize)
}

fn codes<T>(out: &mut String, prefix: &str, table: &[(&str, T, &str)])
where
    T: Copy + Into<u64>,
{
    for &(name, value, doc) in table {
        let _ = writeln!(
            out,
            "  localparam logic [7:0] {prefix}_{} = 8'd{}; // {doc}",
            upper_snake(name),
            value.into()
        );
    }
}

fn layout_struct(out: &mut String, l: &Layout) {
    let _ = writeln!(
        out,
        "  // {}: {} bytes. Byte i of the little-endian memory image is bits [8i+7:8i].",
        l.name, l.size_bytes
    );
    let _ = writeln!(
        out,
        "  localparam int {}_SIZE_BYTES = {};",
        l.name, l.size_bytes
    );
    for f in l.fields {
        let _ = writeln!(
            out,
            "  localparam int {}_{}_LSB = {};",
            l.name, f.name, f.offset_bits
        );
        let _ = writeln!(
            out,
            "  localparam int {}_{}_WIDTH = {};",
            l.name, f.name, f.width_bits
        );
    }
    let _ = writeln!(out, "  typedef struct packed {{");
    for f in l.fields.iter().rev() {
        let ty = if f.width_bits == 1 {
            "logic".to_string()
        } else {
            format!("logic [{}:0]", f.width_bits - 1)
        };
        let _ = writeln!(
            out,
            "    {ty} {}; // {}",
            f.name.to_ascii_lowercase(),
            f.doc
        );
    }
    let _ = writeln!(out, "  }} {}_t;\n", l.name.to_ascii_lowercase());
}

/// The full text of `fpga/rtl/espo_pkg.sv`.
pub fn sv_package() -> String {
    let mut o = String::new();
    o.push_str("// espo_pkg: the ESPO-1 register map, DMA structures and codes.\n");
    o.push_str("// Generated from the espo-fpga crate; do not edit.\n");
    o.push_str("// Regenerate with: cargo run -p espo-fpga --bin espo-fpga-gen\n\n");
    o.push_str("package espo_pkg;\n\n");
    o.push_str("  // Most users need a few of these constants; the rest are unused by design.\n");
    o.push_str("  /* verilator lint_off UNUSEDPARAM */\n\n");
    let _ = writeln!(o, "  localparam int BAR0_BYTES = {};\n", regs::BAR0_SIZE);
    for b in BLOCKS {
        let _ = writeln!(o, "  // Block {}: {}", b.name, b.doc);
        let _ = writeln!(
            o,
            "  localparam logic [31:0] {}_BLOCK_TYPE = {};",
            b.name,
            hex(32, b.block_type.into())
        );
        let _ = writeln!(
            o,
            "  localparam logic [31:0] {}_BASE = {};",
            b.name,
            hex(32, b.base.into())
        );
        if b.instances > 1 {
            let _ = writeln!(
                o,
                "  localparam int {}_INSTANCES = {};",
                b.name, b.instances
            );
            let _ = writeln!(
                o,
                "  localparam logic [31:0] {}_STRIDE = {};",
                b.name,
                hex(32, b.stride.into())
            );
            o.push_str("  // Register offsets below are relative to the instance base.\n");
        } else {
            o.push_str("  // Register offsets below are BAR0 offsets.\n");
        }
        for r in b.regs {
            let off = if b.instances > 1 { r.offset } else { r.addr() };
            let p = format!("{}_{}", b.name, r.name);
            let _ = writeln!(
                o,
                "  localparam logic [31:0] {p}_OFFSET = {}; // {} {}",
                hex(32, off.into()),
                r.access.as_str(),
                r.doc
            );
            let _ = writeln!(
                o,
                "  localparam logic [{}:0] {p}_RESET = {};",
                r.width_bits - 1,
                hex(r.width_bits, r.reset)
            );
            for f in r.fields {
                let _ = writeln!(
                    o,
                    "  localparam int {p}_{}_LSB = {}; // {}",
                    f.name, f.lsb, f.doc
                );
                let _ = writeln!(o, "  localparam int {p}_{}_WIDTH = {};", f.name, f.width);
            }
        }
        o.push('\n');
    }
    o.push_str("  // Status codes (admin completions, TX/RX verdicts)\n");
    codes(&mut o, "STATUS", Status::TABLE);
    o.push_str("\n  // Event codes\n");
    codes(&mut o, "EVENT", EventCode::TABLE);
    o.push_str("\n  // Fault codes\n");
    codes(&mut o, "FAULT", FaultCode::TABLE);
    o.push_str("\n  // DMA units\n");
    codes(&mut o, "DMA_UNIT", DmaUnit::TABLE);
    o.push_str("\n  // Algorithms\n");
    codes(&mut o, "ALG", AlgId::TABLE);
    o.push_str("\n  // Outer IPv4 DF modes\n");
    codes(&mut o, "DF", DfMode::TABLE);
    o.push_str("\n  // Admin opcodes\n");
    codes(&mut o, "ADMIN_OP", AdminOpcode::TABLE);
    o.push_str("\n  // Counter indices of the STATS block\n");
    codes(&mut o, "COUNTER", Counter::TABLE);
    o.push('\n');
    for l in crate::LAYOUTS {
        layout_struct(&mut o, l);
    }
    o.push_str("  /* verilator lint_on UNUSEDPARAM */\n");
    o.push_str("endpackage\n\n");
    o.push_str(
        "// Lint anchor: gives `verilator --lint-only -Wall espo_pkg.sv` a top module that\n",
    );
    o.push_str("// elaborates the package. Designs using the package select their own top.\n");
    o.push_str("/* verilator lint_off DECLFILENAME */\n");
    o.push_str("module espo_pkg_lint (\n  output logic [31:0] device_id\n);\n");
    o.push_str("  assign device_id = espo_pkg::IDENT_DEVICE_ID_RESET;\nendmodule\n/* verilator lint_on DECLFILENAME */\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_has_offsets_structs_and_codes() {
        let p = sv_package();
        assert!(p.starts_with("// espo_pkg"));
        assert!(p.contains("localparam logic [31:0] CTRL_CONTROL_OFFSET = 32'h00000210;"));
        assert!(p.contains("localparam logic [31:0] QUEUE_TXQ_TAIL_OFFSET = 32'h0000001C;"));
        assert!(p.contains("localparam int CTRL_CONTROL_RESET_LSB = 1;"));
        assert!(p.contains("localparam logic [7:0] STATUS_ICV_FAIL = 8'd3;"));
        assert!(p.contains("} tx_desc_t;"));
        // Packed structs list the most significant field first: the phase bit of a completion.
        let cpl = &p[p.find("TX_CPL: 16 bytes").expect("tx_cpl")..];
        let body = &cpl[cpl.find("typedef struct packed").expect("struct")..];
        assert!(
            body.lines()
                .nth(1)
                .expect("first member")
                .contains("logic phase;")
        );
        assert!(p.contains("endpackage\n"));
        assert!(p.contains("endmodule"));
    }
}
