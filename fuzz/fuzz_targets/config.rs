//! The configuration parser and validator on arbitrary text: an error or a configuration,
//! never a panic; and an error message never repeats a key's hex digits.
#![no_main]

use std::path::Path;

use espo_config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = Config::parse(text, Path::new("fuzz.toml")) {
        // No 8 bytes of anything hex-like (a key) in any message.
        let message = e.to_string();
        let mut run = 0;
        for c in message.chars() {
            run = if c.is_ascii_hexdigit() { run + 1 } else { 0 };
            assert!(run < 16, "16 hex digits in an error: {message}");
        }
    }
});
