//! Copying to the clipboard with OSC 52: the terminal (or tmux, with `set-clipboard on`)
//! puts the text on the system clipboard, which also works over SSH.

use std::io::Write;

/// Most bytes copied; terminals cap OSC 52 payloads (xterm at about 100 kB of base64).
pub const MAX_COPY_BYTES: usize = 74_994;

/// The escape sequence that puts `text` on the clipboard (cut at [`MAX_COPY_BYTES`]).
pub fn osc52(text: &str) -> String {
    let mut end = text.len().min(MAX_COPY_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("\x1b]52;c;{}\x07", base64(&text.as_bytes()[..end]))
}

/// Writes the sequence to the terminal.
pub fn copy(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    out.write_all(osc52(text).as_bytes())?;
    out.flush()
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_base64() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn wraps_in_osc52_and_caps_the_size() {
        assert_eq!(osc52("hi"), "\x1b]52;c;aGk=\x07");
        let long = "é".repeat(MAX_COPY_BYTES);
        assert!(osc52(&long).len() < MAX_COPY_BYTES * 4 / 3 + 16);
    }
}
