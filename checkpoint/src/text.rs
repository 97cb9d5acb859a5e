//! Quoted strings of the protobuf text format (C escapes, octal and hex bytes), shared
//! by the `checkpoint` state file and `graph.pbtxt`.

use crate::error::{Error, Result};

/// `b` as a double-quoted text-format string.
pub(crate) fn quote_bytes(b: &[u8]) -> String {
    let mut out = String::from("\"");
    for &c in b {
        match c {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\'' => out.push_str("\\'"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(c as char),
            _ => out.push_str(&format!("\\{c:03o}")),
        }
    }
    out.push('"');
    out
}

/// The bytes of one or more adjacent quoted strings (single or double quotes).
pub(crate) fn unquote_bytes(s: &str) -> Result<Vec<u8>> {
    let bad = || Error::invalid_argument(format!("pbtxt: bad string {s}"));
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let q = b[i];
        if q != b'"' && q != b'\'' {
            return Err(bad());
        }
        i += 1;
        while i < b.len() && b[i] != q {
            if b[i] == b'\\' {
                i += 1;
                let e = *b.get(i).ok_or_else(bad)?;
                match e {
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'0'..=b'7' => {
                        let mut v = 0u32;
                        let mut k = 0;
                        while k < 3 && i < b.len() && (b'0'..=b'7').contains(&b[i]) {
                            v = v * 8 + u32::from(b[i] - b'0');
                            i += 1;
                            k += 1;
                        }
                        out.push(v as u8);
                        continue;
                    }
                    b'x' => {
                        let h = s.get(i + 1..i + 3).ok_or_else(bad)?;
                        out.push(u8::from_str_radix(h, 16).map_err(|_| bad())?);
                        i += 3;
                        continue;
                    }
                    other => out.push(other),
                }
                i += 1;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        if i >= b.len() {
            // No closing quote.
            return Err(bad());
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
    }
    Ok(out)
}
