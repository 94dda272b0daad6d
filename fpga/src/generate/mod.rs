//! Generators: the SystemVerilog package and the datasheet's tables, both from the
//! definitions in this crate. `cargo run -p espo-fpga --bin espo-fpga-gen` rewrites the
//! checked-in files; a test fails when they are stale.

mod markdown;
mod sv;

pub use markdown::{codes_markdown, layouts_markdown, registers_markdown};
pub use sv::sv_package;

/// The regions of fpga/README.md filled by the generator, with their contents.
pub fn readme_regions() -> Vec<(&'static str, String)> {
    vec![
        ("registers", registers_markdown()),
        ("layouts", layouts_markdown()),
        ("codes", codes_markdown()),
    ]
}

/// A datasheet without its generated region markers.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GenError {
    #[error("fpga/README.md has no `{0}` marker for the generated `{1}` region")]
    MissingMarker(String, &'static str),
}

pub fn begin_marker(region: &str) -> String {
    format!("<!-- BEGIN GENERATED: {region} (cargo run -p espo-fpga --bin espo-fpga-gen) -->")
}

pub fn end_marker(region: &str) -> String {
    format!("<!-- END GENERATED: {region} -->")
}

/// `readme` with every generated region replaced by freshly generated text.
pub fn update_readme(readme: &str) -> Result<String, GenError> {
    let mut text = readme.to_string();
    for (region, body) in readme_regions() {
        let begin = begin_marker(region);
        let end = end_marker(region);
        let start = text
            .find(&begin)
            .ok_or_else(|| GenError::MissingMarker(begin.clone(), region))?;
        let body_start = start + begin.len();
        let stop = text[body_start..]
            .find(&end)
            .map(|i| body_start + i)
            .ok_or_else(|| GenError::MissingMarker(end.clone(), region))?;
        text.replace_range(body_start..stop, &format!("\n{body}"));
    }
    Ok(text)
}

/// SCREAMING_SNAKE_CASE of a CamelCase identifier (`AesGcm128` -> `AES_GCM_128`). A
/// digit run is its own word only when it is a 3-digit key size (`Chacha20Poly1305` ->
/// `CHACHA20_POLY1305`).
pub(crate) fn upper_snake(name: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let prev = if i > 0 {
            chars.get(i - 1).copied()
        } else {
            None
        };
        let boundary = match prev {
            Some(p) => {
                (c.is_ascii_uppercase() && !p.is_ascii_uppercase())
                    || (c.is_ascii_digit() && !p.is_ascii_digit() && digit_run(&chars[i..]) == 3)
            }
            None => false,
        };
        if boundary {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn digit_run(chars: &[char]) -> usize {
    chars.iter().take_while(|c| c.is_ascii_digit()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_snake_splits_words_and_numbers() {
        assert_eq!(upper_snake("AesGcm128"), "AES_GCM_128");
        assert_eq!(upper_snake("Chacha20Poly1305"), "CHACHA20_POLY1305");
        assert_eq!(upper_snake("RxNoSa"), "RX_NO_SA");
    }

    #[test]
    fn update_readme_replaces_regions_and_reports_missing_markers() {
        let mut doc = String::from("intro\n");
        for (r, _) in readme_regions() {
            doc.push_str(&format!("{}\nold\n{}\n", begin_marker(r), end_marker(r)));
        }
        let new = update_readme(&doc).expect("markers present");
        assert!(!new.contains("\nold\n"));
        assert!(new.contains("| 0x0200 |") || new.contains("CONTROL"));
        assert_eq!(
            update_readme(&new).as_deref(),
            Ok(new.as_str()),
            "idempotent"
        );
        assert!(matches!(
            update_readme("no markers"),
            Err(GenError::MissingMarker(_, "registers"))
        ));
    }
}
