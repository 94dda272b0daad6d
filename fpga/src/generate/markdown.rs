//! The datasheet's generated tables: registers per block, DMA structure layouts, codes.

use crate::codes::{AdminOpcode, AlgId, Counter, DfMode, DmaUnit, EventCode, FaultCode, Status};
use crate::regs::BLOCKS;
use std::fmt::Write;

/// Text safe inside a table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn bits(lsb: u32, width: u32) -> String {
    if width == 1 {
        format!("{lsb}")
    } else {
        format!("{}:{lsb}", lsb + width - 1)
    }
}

/// One table per register block.
pub fn registers_markdown() -> String {
    let mut o = String::new();
    for b in BLOCKS {
        let _ = write!(
            o,
            "#### {} — type 0x{:08X}, version {}.{}, base 0x{:04X}",
            b.name,
            b.block_type,
            b.version >> 16,
            b.version & 0xFFFF,
            b.base
        );
        if b.instances > 1 {
            let _ = write!(
                o,
                ", {} instances every 0x{:X} bytes (offsets relative to the instance)",
                b.instances, b.stride
            );
        }
        let _ = writeln!(o, "\n\n{}\n", b.doc);
        o.push_str("| Offset | Register | Bits | Access | Reset | Description |\n");
        o.push_str("|---|---|---|---|---|---|\n");
        for r in b.regs {
            let off = if b.instances > 1 { r.offset } else { r.addr() };
            let _ = writeln!(
                o,
                "| 0x{off:04X} | {} | {} | {} | 0x{:X} | {} |",
                r.name,
                bits(0, r.width_bits),
                r.access.as_str(),
                r.reset,
                cell(r.doc)
            );
            for f in r.fields {
                let _ = writeln!(
                    o,
                    "| | .{} | {} | | | {} |",
                    f.name,
                    bits(f.lsb, f.width),
                    f.doc
                );
            }
        }
        o.push('\n');
    }
    o
}

/// One table per DMA structure.
pub fn layouts_markdown() -> String {
    let mut o = String::new();
    for l in crate::LAYOUTS {
        let _ = writeln!(o, "#### {} — {} bytes\n\n{}\n", l.name, l.size_bytes, l.doc);
        o.push_str("| Byte | Bits | Field | Description |\n|---|---|---|---|\n");
        for f in l.fields {
            let byte = if f.width_bits >= 8 && f.offset_bits % 8 == 0 {
                let first = f.offset_bits / 8;
                let last = (f.offset_bits + f.width_bits) / 8 - 1;
                if first == last {
                    format!("{first}")
                } else {
                    format!("{first}..{last}")
                }
            } else {
                format!("{}", f.offset_bits / 8)
            };
            let _ = writeln!(
                o,
                "| {byte} | {} | {} | {} |",
                bits(f.offset_bits, f.width_bits),
                f.name,
                f.doc
            );
        }
        o.push('\n');
    }
    o
}

fn code_table<T: Copy + Into<u64>>(o: &mut String, title: &str, table: &[(&str, T, &str)]) {
    let _ = writeln!(
        o,
        "#### {title}\n\n| Value | Name | Meaning |\n|---|---|---|"
    );
    for &(name, v, doc) in table {
        let _ = writeln!(
            o,
            "| {} | {} | {} |",
            v.into(),
            super::upper_snake(name),
            doc
        );
    }
    o.push('\n');
}

/// One table per code space.
pub fn codes_markdown() -> String {
    let mut o = String::new();
    code_table(&mut o, "Status codes", Status::TABLE);
    code_table(&mut o, "Event codes", EventCode::TABLE);
    code_table(&mut o, "Fault codes (FAULT_CODE.CODE)", FaultCode::TABLE);
    code_table(
        &mut o,
        "DMA units (FAULT_CODE.UNIT, DMA_FAULT event AUX)",
        DmaUnit::TABLE,
    );
    code_table(
        &mut o,
        "Algorithms (SA_ENTRY.ALG, CAP_ALGS bit)",
        AlgId::TABLE,
    );
    code_table(&mut o, "DF modes (SA_ENTRY.DF_MODE)", DfMode::TABLE);
    code_table(&mut o, "Admin opcodes", AdminOpcode::TABLE);
    code_table(
        &mut o,
        "Counters (STATS block, counter i at 0x0640 + 8 * i)",
        Counter::TABLE,
    );
    o
}
