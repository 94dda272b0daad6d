//! Keeping key material out of configuration errors.
//!
//! The toml crate's own error text quotes the offending line of the file, which may hold a
//! key. espo builds its syntax errors itself instead: the line and column, the parser's
//! message, and the offending line with the value of every secret field replaced by
//! `<redacted>` ([`syntax_message`]). Secret fields are found by a small scanner that knows
//! just enough TOML (strings of the four kinds, comments, arrays, inline tables) to find
//! where each value starts and ends even in a broken file; a field is secret when its name
//! ends with `key`, `psk` or `secret` ([`is_secret_field`]). As a second net, every run of
//! 16 or more hex digits (8 bytes) in a message is redacted too ([`redact_hex_runs`]).

use core::ops::Range;

/// What replaces a secret in a message.
pub(crate) const REDACTED: &str = "<redacted>";

/// The shortest run of hex digits [`redact_hex_runs`] hides: 8 bytes.
const MIN_HEX_RUN: usize = 16;

/// Whether a field of this name holds secret material: `key`, `integrity_key`, any name
/// ending with `key`, `psk` or `secret` (the last segment of a dotted name, any case).
pub(crate) fn is_secret_field(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    let last = last.trim().trim_matches(|c| c == '"' || c == '\'');
    let lower = last.to_ascii_lowercase();
    ["key", "psk", "secret"].iter().any(|s| lower.ends_with(s))
}

/// The byte ranges of `text` holding values of secret fields, in order. Lenient: in a
/// broken file a value runs to where the scanner can tell it ends (an unterminated string
/// to the end of its line; an unterminated multi-line string, array or inline table to the
/// end of the text), so that redaction errs towards hiding more.
pub(crate) fn secret_spans(text: &str) -> Vec<Range<usize>> {
    let b = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    // Where the current key began (bare or quoted, possibly dotted), if one is being read.
    let mut key_start: Option<usize> = None;
    while i < b.len() {
        match b[i] {
            b'#' => {
                i = line_end(b, i);
                key_start = None;
            }
            b'"' | b'\'' => {
                let end = string_end(b, i);
                if key_start.is_none() {
                    key_start = Some(i);
                }
                i = end;
            }
            b'=' => {
                let key = key_start.map(|s| &text[s..i]).unwrap_or("");
                let value_start = skip_blanks(b, i + 1);
                let value_end = value_end(b, value_start);
                if is_secret_field(key) && value_start < value_end {
                    spans.push(value_start..value_end);
                }
                // Values are not keys: step over this one, except into an inline table or
                // array, whose own keys are scanned.
                i = match b.get(value_start) {
                    Some(b'{' | b'[') => value_start + 1,
                    _ => value_end,
                };
                key_start = None;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' => {
                if key_start.is_none() {
                    key_start = Some(i);
                }
                i += 1;
            }
            b'.' | b' ' | b'\t' => i += 1,
            _ => {
                // Newlines, brackets, commas and braces end whatever key was being read.
                key_start = None;
                i += 1;
            }
        }
    }
    spans
}

fn line_end(b: &[u8], from: usize) -> usize {
    b[from..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |p| from + p)
}

fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    i
}

/// The end of the string starting at `start` (its closing quote included); an unterminated
/// one-line string ends at its line's end, a multi-line one at the end of the text.
fn string_end(b: &[u8], start: usize) -> usize {
    let q = b[start];
    let basic = q == b'"';
    if b[start..].starts_with(&[q, q, q]) {
        let mut i = start + 3;
        while i < b.len() {
            if basic && b[i] == b'\\' {
                i += 2;
                continue;
            }
            if b[i..].starts_with(&[q, q, q]) {
                // Up to two more quotes may belong to the content ("""a"""" is `a"`).
                let mut end = i + 3;
                while end < b.len() && b[end] == q && end < i + 5 {
                    end += 1;
                }
                return end;
            }
            i += 1;
        }
        return b.len();
    }
    let mut i = start + 1;
    while i < b.len() && b[i] != b'\n' {
        if basic && b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == q {
            return i + 1;
        }
        i += 1;
    }
    i.min(b.len())
}

/// The end of the value starting at `start`.
fn value_end(b: &[u8], start: usize) -> usize {
    match b.get(start) {
        None => start,
        Some(b'"' | b'\'') => string_end(b, start),
        Some(&open @ (b'[' | b'{')) => {
            // To the matching bracket (strings inside skipped), or the end of the text.
            let close = if open == b'[' { b']' } else { b'}' };
            let mut depth = 0usize;
            let mut i = start;
            while i < b.len() {
                match b[i] {
                    b'"' | b'\'' => {
                        i = string_end(b, i);
                        continue;
                    }
                    b'#' => {
                        i = line_end(b, i);
                        continue;
                    }
                    c if c == open => depth += 1,
                    c if c == close => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            b.len()
        }
        Some(_) => {
            // A bare value (number, boolean, date, or garbage): to a separator or the line's
            // end, trailing blanks left out.
            let mut end = start;
            while end < b.len() && !matches!(b[end], b'\n' | b'\r' | b',' | b'}' | b']' | b'#') {
                end += 1;
            }
            while end > start && matches!(b[end - 1], b' ' | b'\t') {
                end -= 1;
            }
            end
        }
    }
}

/// `text` with every run of at least 16 hex digits replaced by [`REDACTED`].
pub(crate) fn redact_hex_runs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for c in text.chars() {
        if c.is_ascii_hexdigit() {
            run.push(c);
            continue;
        }
        flush_run(&mut out, &mut run);
        out.push(c);
    }
    flush_run(&mut out, &mut run);
    out
}

fn flush_run(out: &mut String, run: &mut String) {
    if run.len() >= MIN_HEX_RUN {
        out.push_str(REDACTED);
    } else {
        out.push_str(run);
    }
    zeroize::Zeroize::zeroize(run);
}

/// The line of `text` holding byte `at`: its 1-based number, its byte range (without the
/// line break) and the 1-based column of `at` in characters.
fn locate(text: &str, at: usize) -> (usize, Range<usize>, usize) {
    let at = at.min(text.len());
    let at = (0..=at)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let start = text[..at].rfind('\n').map_or(0, |p| p + 1);
    let end = text[at..].find('\n').map_or(text.len(), |p| at + p);
    let line = text[..start].matches('\n').count() + 1;
    let column = text[start..at].chars().count() + 1;
    let end = if text[..end].ends_with('\r') && end > start {
        end - 1
    } else {
        end
    };
    (line, start..end.max(start), column)
}

/// The line `range` of `text`, every part of a secret span in it replaced by [`REDACTED`]
/// (with hex runs redacted as well); true when something was replaced.
fn redacted_line(text: &str, range: Range<usize>, spans: &[Range<usize>]) -> (String, bool) {
    let mut out = String::new();
    let mut at = range.start;
    let mut replaced = false;
    for s in spans {
        // Spans may nest (a secret inline table and a key inside it): never step back.
        let start = s.start.max(range.start).max(at);
        let end = s.end.min(range.end);
        if start >= end {
            continue;
        }
        out.push_str(&text[at..start]);
        out.push_str(REDACTED);
        at = end;
        replaced = true;
    }
    out.push_str(&text[at..range.end]);
    let hidden = redact_hex_runs(&out);
    let replaced = replaced || hidden != out;
    zeroize::Zeroize::zeroize(&mut out);
    (hidden, replaced)
}

/// The text of a syntax error at byte `at` of `text` (`None`: the parser gave no place):
/// `line L, column C: message`, then the offending line with every secret value redacted
/// — and a caret under the column where nothing on the line was redacted (it would point
/// at the wrong place). The parser's message has its hex runs redacted and its lines
/// joined with `; `.
pub(crate) fn syntax_message(text: &str, at: Option<usize>, message: &str) -> String {
    let message = redact_hex_runs(
        &message
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
    );
    let Some(at) = at else {
        return message;
    };
    let (line, range, column) = locate(text, at);
    let spans = secret_spans(text);
    let (shown, replaced) = redacted_line(text, range, &spans);
    let number = line.to_string();
    let mut out = format!("line {line}, column {column}: {message}\n  {number} | {shown}");
    if !replaced {
        let pad = " ".repeat(number.len());
        let before: String = shown
            .chars()
            .take(column - 1)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        out.push_str(&format!("\n  {pad} | {before}^"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "00112233445566778899aabbccddeeff01020304";

    fn spans_text(text: &str) -> Vec<&str> {
        secret_spans(text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn secret_field_names() {
        for name in [
            "key",
            "integrity_key",
            "KEY",
            "\"key\"",
            "sa.key",
            "psk",
            "ike_psk",
            "secret",
            "shared_secret",
            "preshared_key",
        ] {
            assert!(is_secret_field(name), "{name}");
        }
        for name in ["spi", "keys", "encryption", "integrity", "monkey_business"] {
            assert!(!is_secret_field(name), "{name}");
        }
    }

    #[test]
    fn finds_values_of_every_kind() {
        let text = format!(
            "key = \"{KEY}\"\nintegrity_key='abcd' # comment key = \"x\"\nspi = 0x1001\n\
             psk = 12345\nkey2 = 1\n\"key\" = \"q\\\"uoted\"\nsa.key = [\"aa\", \"bb\"]\n\
             udp_encap = {{ src_port = 1, key = \"cc\" }}\nsecret = \"\"\"multi\nline\"\"\"\n"
        );
        assert_eq!(
            spans_text(&text),
            vec![
                format!("\"{KEY}\"").as_str(),
                "'abcd'",
                "12345",
                "\"q\\\"uoted\"",
                "[\"aa\", \"bb\"]",
                "\"cc\"",
                "\"\"\"multi\nline\"\"\"",
            ]
        );
    }

    #[test]
    fn broken_values_run_to_where_they_might_end() {
        // Unterminated one-line string: to the end of its line.
        let text = format!("key = \"{KEY}\nspi = 1\n");
        assert_eq!(spans_text(&text), vec![format!("\"{KEY}").as_str()]);
        // Unterminated multi-line string and array: to the end of the text.
        let text = format!("key = \"\"\"{KEY}\nspi = 1\n");
        assert_eq!(spans_text(&text), vec![&text[6..]]);
        let text = format!("key = [\"{KEY}\",\nspi = 1\n");
        assert_eq!(spans_text(&text), vec![&text[6..]]);
        // A value cut off by garbage on its line.
        let text = format!("key = \"{KEY}\" garbage\n");
        assert_eq!(spans_text(&text), vec![format!("\"{KEY}\"").as_str()]);
        // Nothing after `=`.
        assert!(spans_text("key =\n").is_empty());
        // Unbalanced closing brackets and quotes never panic.
        for text in [
            "]]]}}}= key",
            "key = }",
            "'",
            "\"\"\"",
            "key = '''",
            "=",
            "key=\\",
        ] {
            let _ = secret_spans(text);
        }
    }

    #[test]
    fn hex_runs_of_eight_bytes_are_hidden() {
        assert_eq!(
            redact_hex_runs(&format!("bad `{KEY}` here")),
            "bad `<redacted>` here"
        );
        assert_eq!(
            redact_hex_runs("spi 0x00001001, 2001:db8::1"),
            "spi 0x00001001, 2001:db8::1"
        );
        assert_eq!(redact_hex_runs("0123456789abcdef"), REDACTED);
        assert_eq!(redact_hex_runs("0123456789abcde"), "0123456789abcde");
    }

    #[test]
    fn a_syntax_error_on_a_key_line_shows_the_line_redacted() {
        let text = format!("[[sa]]\nspi = 1\nkey = \"{KEY}\n");
        // Where toml reports it: the end of the line.
        let at = text.len() - 1;
        let m = syntax_message(&text, Some(at), "invalid basic string");
        assert_eq!(
            m,
            "line 3, column 48: invalid basic string\n  3 | key = <redacted>"
        );
        // On another line: shown as it is, with a caret.
        let text = format!("key = \"{KEY}\"\nprotocol = esp\n");
        let at = text.find("esp").unwrap();
        let m = syntax_message(&text, Some(at), "invalid string\nexpected `\"`, `'`");
        assert_eq!(
            m,
            "line 2, column 12: invalid string; expected `\"`, `'`\n  2 | protocol = esp\n    |            ^"
        );
        // Inside a multi-line key: every line of it is hidden.
        let text = format!("key = \"\"\"{KEY}\n{KEY}\n");
        let m = syntax_message(&text, Some(text.len()), "unterminated");
        assert!(!m.contains(&KEY[..16]), "{m}");
        // A key outside any key field is still caught by its length.
        let text = format!("protocol = \"{KEY}\" x\n");
        let m = syntax_message(&text, Some(text.len() - 2), "expected newline");
        assert!(!m.contains(&KEY[..16]), "{m}");
        // No place: the message alone.
        assert_eq!(syntax_message("", None, "oops"), "oops");
        // Any place, even past the end or inside a character, never panics.
        for at in 0..=text.len() + 3 {
            let _ = syntax_message("é\nkey = 'ü'", Some(at), "x");
        }
    }
}
