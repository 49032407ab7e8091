//! Lossless escaping of raw path bytes into one text field.
//!
//! Printable ASCII other than `\` passes through; valid UTF-8 beyond ASCII
//! passes through unchanged. `\` becomes `\\`, and every other byte (controls,
//! tab, newline, DEL, bytes that are not valid UTF-8, and space) becomes `\xHH`.
//! A leading `#` becomes `\x23`, so that no entry line looks like a header
//! or comment line.

/// Escapes raw path bytes for the text format.
pub fn escape_path(out: &mut Vec<u8>, path: &[u8]) {
    let mut rest = path;
    if let Some(tail) = rest.strip_prefix(b"#") {
        push_hex(out, b'#');
        rest = tail;
    }
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                escape_str(out, s);
                return;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                // valid_up_to guarantees this prefix is UTF-8
                escape_str(out, std::str::from_utf8(good).unwrap_or_default());
                let n = e.error_len().unwrap_or(bad.len()).max(1);
                for &b in &bad[..n] {
                    push_hex(out, b);
                }
                rest = &bad[n..];
            }
        }
    }
}

fn escape_str(out: &mut Vec<u8>, s: &str) {
    for ch in s.chars() {
        match ch {
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) <= 0x20 || c as u32 == 0x7f => push_hex(out, c as u8),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

fn push_hex(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(&[b'\\', b'x', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
}

/// Reverses [`escape_path`]. Returns a message on malformed input.
pub fn unescape_path(field: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' {
            if b <= 0x20 || b == 0x7f {
                return Err(format!("unescaped control byte 0x{b:02x} in path"));
            }
            out.push(b);
            i += 1;
            continue;
        }
        match field.get(i + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let hex = field.get(i + 2..i + 4).ok_or("truncated `\\x` escape in path")?;
                let v = std::str::from_utf8(hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or("bad `\\x` escape in path")?;
                out.push(v);
                i += 4;
            }
            _ => return Err("unknown escape in path".to_string()),
        }
    }
    if std::str::from_utf8(&out).is_err() && std::str::from_utf8(field).is_err() {
        return Err("path field is not valid UTF-8 text".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn esc(p: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        escape_path(&mut v, p);
        v
    }

    #[test]
    fn escapes_what_would_break_a_line() {
        assert_eq!(esc(b"a b\tc\nd\\e"), b"a\\x20b\\x09c\\x0ad\\\\e".to_vec());
        assert_eq!(esc("caf\u{e9}".as_bytes()), "caf\u{e9}".as_bytes().to_vec());
        assert_eq!(esc(b"\xff\xfeok"), b"\\xff\\xfeok".to_vec());
        assert_eq!(esc(b"#a#b"), b"\\x23a#b".to_vec());
    }

    proptest! {
        #[test]
        fn round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let e = esc(&bytes);
            prop_assert!(!e.contains(&b'\n') && !e.contains(&b'\t') && !e.contains(&b' '));
            prop_assert!(!e.starts_with(b"#"));
            prop_assert_eq!(unescape_path(&e).unwrap(), bytes);
        }
    }
}
