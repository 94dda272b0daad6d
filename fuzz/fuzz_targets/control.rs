//! The control socket's request parser (`espo sa ...`, `espo policy ...`) on arbitrary
//! bytes: it never panics, and what it refuses it refuses with a message that quotes no
//! long run of hex digits (no key material from the request).
#![no_main]

use espo_config::control::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = Request::parse(data) {
        let text = e.to_string();
        let mut run = 0;
        for c in text.chars() {
            run = if c.is_ascii_hexdigit() { run + 1 } else { 0 };
            assert!(run < 16, "a hex run in an error: {text}");
        }
    }
});
