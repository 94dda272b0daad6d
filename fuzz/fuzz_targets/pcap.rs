//! The capture reader on arbitrary bytes: records or a typed error, never a panic, and
//! never a record longer than the reader's limit.
#![no_main]

use espo_harness::pcap::{MAX_RECORD_LEN, Reader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = Reader::new(data) else { return };
    let _ = reader.header();
    while let Ok(Some((record, bytes))) = reader.next_record() {
        assert!(bytes.len() <= MAX_RECORD_LEN as usize);
        let _ = record.orig_len;
    }
});
