//! Timelines in the formats of the field: The Sleuth Kit's bodyfile (what
//! `fls -m` writes and `mactime -b` reads) and CSV.
//!
//! Escaping (also in `pyactivity --help`):
//! - bodyfile: in the name, `%`, `|` and bytes that are not UTF-8 become
//!   `%HH` (two upper-case hex digits), which `mactime` decodes back to the
//!   byte (its `tm_split`); control characters (bytes below 0x20, and 0x7f)
//!   become the text `\xHH` and `\` becomes `\\`, because mactime drops a
//!   name holding a newline even when decoded (TSK's `fls` writes `^` for
//!   them, losing the byte); other UTF-8 passes through.
//! - CSV (RFC 4180): a field holding `,`, `"`, CR or LF is quoted, `"`
//!   doubled; in paths, bytes that are not UTF-8 become `\xHH` and `\`
//!   becomes `\\`, so that every row is UTF-8 and no name is lost.

/// Appends `name` escaped for a bodyfile.
pub fn body_name(out: &mut Vec<u8>, name: &[u8]) {
    // Most names need nothing: copy them as they are.
    let plain = |b: &u8| *b >= 0x20 && *b != 0x7f && *b != b'%' && *b != b'|' && *b != b'\\';
    if name.iter().all(plain) && (name.is_ascii() || std::str::from_utf8(name).is_ok()) {
        out.extend_from_slice(name);
        return;
    }
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '%' || c == '|' {
                out.extend_from_slice(format!("%{:02X}", c as u32).as_bytes());
            } else if (c as u32) < 0x20 || c as u32 == 0x7f {
                out.extend_from_slice(format!("\\x{:02x}", c as u32).as_bytes());
            } else if c == '\\' {
                out.extend_from_slice(b"\\\\");
            } else {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
        for b in chunk.invalid() {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
}

/// The kind letter of `ls -l` (and of TSK's mode strings).
pub fn kind_letter(kind: walk::Kind) -> char {
    match kind {
        walk::Kind::File => '-',
        walk::Kind::Dir => 'd',
        walk::Kind::Symlink => 'l',
        walk::Kind::Fifo => 'p',
        walk::Kind::Socket => 's',
        walk::Kind::CharDevice => 'c',
        walk::Kind::BlockDevice => 'b',
    }
}

/// TSK's mode string, as `fls -m` writes it: the name's type, `/`, then
/// the metadata's type and the nine permission letters (`r/rrw-r--r--`,
/// `d/drwxr-xr-x`, `l/lrwxrwxrwx`), with s/S and t/T for the set-id and
/// sticky bits.
#[cfg(test)]
pub fn mode_string(kind: walk::Kind, mode: u32) -> String {
    String::from_utf8_lossy(&mode_bytes(kind, mode)).into_owned()
}

fn mode_bytes(kind: walk::Kind, mode: u32) -> [u8; 12] {
    let t = match kind_letter(kind) {
        '-' => b'r',
        c => c as u8,
    };
    let bit = |m: u32, c: u8| if mode & m != 0 { c } else { b'-' };
    let special = |x: bool, set: bool, lower: u8, upper: u8| match (set, x) {
        (true, true) => lower,
        (true, false) => upper,
        (false, true) => b'x',
        (false, false) => b'-',
    };
    [
        t,
        b'/',
        t,
        bit(0o400, b'r'),
        bit(0o200, b'w'),
        special(mode & 0o100 != 0, mode & 0o4000 != 0, b's', b'S'),
        bit(0o040, b'r'),
        bit(0o020, b'w'),
        special(mode & 0o010 != 0, mode & 0o2000 != 0, b's', b'S'),
        bit(0o004, b'r'),
        bit(0o002, b'w'),
        special(mode & 0o001 != 0, mode & 0o1000 != 0, b't', b'T'),
    ]
}

/// One bodyfile line (TSK 3.x): `MD5|name|inode|mode|UID|GID|size|atime|
/// mtime|ctime|crtime`, times in seconds, MD5 and an unknown birth time 0.
pub fn body_line(out: &mut Vec<u8>, name: &[u8], kind: walk::Kind, m: &walk::Meta) {
    use std::io::Write;
    out.extend_from_slice(b"0|");
    body_name(out, name);
    out.push(b'|');
    let _ = write!(out, "{}", m.ino);
    out.push(b'|');
    out.extend_from_slice(&mode_bytes(kind, m.mode));
    let crtime = m.birth.map_or(0, |b| b.0);
    // Writing into a Vec cannot fail.
    let _ = writeln!(out, "|{}|{}|{}|{}|{}|{}|{}", m.uid, m.gid, m.size, m.atime, m.mtime, m.ctime, crtime);
}

/// A path as CSV text: UTF-8, with `\xHH` for bytes that are not and `\\`
/// for `\`.
pub fn csv_path(p: &[u8]) -> String {
    let mut s = String::with_capacity(p.len());
    for chunk in p.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                s.push_str("\\\\");
            } else {
                s.push(c);
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

/// One CSV field (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_names_escape_what_mactime_decodes() {
        let mut v = Vec::new();
        body_name(&mut v, b"a|b%c\nd\xffe caf\xc3\xa9 x\\y");
        assert_eq!(String::from_utf8(v).unwrap(), "a%7Cb%25c\\x0ad%FFe caf\u{e9} x\\\\y");
    }

    #[test]
    fn mode_strings_as_fls() {
        assert_eq!(mode_string(walk::Kind::File, 0o644), "r/rrw-r--r--");
        assert_eq!(mode_string(walk::Kind::Dir, 0o1777), "d/drwxrwxrwt");
        assert_eq!(mode_string(walk::Kind::File, 0o4754), "r/rrwsr-xr--");
        assert_eq!(mode_string(walk::Kind::File, 0o2640), "r/rrw-r-S---");
        assert_eq!(mode_string(walk::Kind::Symlink, 0o777), "l/lrwxrwxrwx");
    }

    #[test]
    fn csv_fields_and_paths() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,\"b\"\nc"), "\"a,\"\"b\"\"\nc\"");
        assert_eq!(csv_path(b"a\\b\xff"), "a\\\\b\\xff");
    }
}
