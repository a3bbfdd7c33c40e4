//! The segment file format: a header, then length-prefixed, checksummed records.
//!
//! ```text
//! header   magic "SHLGBUF\0" (8 bytes) | version u32 LE | reserved u32 (0)
//! record   payload length u32 LE | CRC-32 (IEEE) of the payload u32 LE | payload
//! ```
//!
//! Records are only ever appended. A crash can leave a torn last record (a short frame,
//! or a payload whose checksum does not match); [`scan`] stops at the first record that
//! is not whole and reports where the good part ends, so the opener can cut the rest off.

use std::io::{self, Read};

/// First bytes of every segment file.
pub const MAGIC: [u8; 8] = *b"SHLGBUF\0";
/// The segment version this build writes and reads.
pub const VERSION: u32 = 1;
/// Size of the file header.
pub const HEADER_BYTES: u64 = 16;
/// Size of a record's frame before its payload (length and checksum).
pub const FRAME_BYTES: u64 = 8;
/// Largest record payload accepted when reading: a corrupt length must not make us allocate
/// gigabytes. Far above any batch the batcher builds (its byte limit is about 1 MiB).
pub const MAX_RECORD_BYTES: u32 = 256 * 1024 * 1024;

/// The header of a version-[`VERSION`] segment.
pub fn header() -> [u8; HEADER_BYTES as usize] {
    let mut out = [0u8; HEADER_BYTES as usize];
    out[..8].copy_from_slice(&MAGIC);
    out[8..12].copy_from_slice(&VERSION.to_le_bytes());
    out
}

/// Why a segment's header cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    /// Too short or a different magic: not a segment of ours.
    #[error("not a shiplog buffer segment (bad magic)")]
    NotASegment,
    /// A version this build does not read.
    #[error("segment version {0} is not supported by this build (reads version {VERSION})")]
    Version(u32),
}

/// Checks a segment header.
pub fn check_header(bytes: &[u8]) -> Result<(), HeaderError> {
    if bytes.len() < HEADER_BYTES as usize || bytes[..8] != MAGIC {
        return Err(HeaderError::NotASegment);
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(HeaderError::Version(version));
    }
    Ok(())
}

/// A record's frame and payload, ready to append.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("payload checked against MAX_RECORD_BYTES");
    let mut out = Vec::with_capacity(payload.len() + FRAME_BYTES as usize);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Where one whole record sits in its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef {
    /// Offset of the frame from the start of the file.
    pub offset: u64,
    /// Frame plus payload, in bytes.
    pub len: u64,
}

/// Why a scan stopped before the end of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The file ends inside a frame or payload (a torn write).
    Torn,
    /// A payload's checksum does not match (a flipped bit or a torn write).
    Checksum,
    /// A frame announces a payload over [`MAX_RECORD_BYTES`].
    Oversized(u32),
}

/// What [`scan`] found in a segment after its header.
#[derive(Debug, Default)]
pub struct Scan {
    /// Every whole record, in order.
    pub records: Vec<RecordRef>,
    /// Where the last whole record ends: the file's good length.
    pub good_len: u64,
    /// Why the scan stopped early; `None` when the whole file is good.
    pub stop: Option<Stop>,
}

/// Reads the records of a segment from `reader`, positioned just after the header.
pub fn scan(mut reader: impl Read) -> io::Result<Scan> {
    let mut out = Scan {
        good_len: HEADER_BYTES,
        ..Scan::default()
    };
    let mut payload = Vec::new();
    loop {
        let mut frame = [0u8; FRAME_BYTES as usize];
        match read_full(&mut reader, &mut frame)? {
            0 => return Ok(out),
            n if n < frame.len() => {
                out.stop = Some(Stop::Torn);
                return Ok(out);
            }
            _ => {}
        }
        let len = u32::from_le_bytes(frame[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(frame[4..].try_into().expect("4 bytes"));
        if len > MAX_RECORD_BYTES {
            out.stop = Some(Stop::Oversized(len));
            return Ok(out);
        }
        payload.resize(len as usize, 0);
        if read_full(&mut reader, &mut payload)? < payload.len() {
            out.stop = Some(Stop::Torn);
            return Ok(out);
        }
        if crc32(&payload) != crc {
            out.stop = Some(Stop::Checksum);
            return Ok(out);
        }
        let record = RecordRef {
            offset: out.good_len,
            len: FRAME_BYTES + u64::from(len),
        };
        out.good_len += record.len;
        out.records.push(record);
    }
}

/// Reads one record's payload from `bytes` (its frame and payload), checking length and
/// checksum.
pub fn payload(bytes: &[u8]) -> Result<&[u8], Stop> {
    if bytes.len() < FRAME_BYTES as usize {
        return Err(Stop::Torn);
    }
    let len = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if len > MAX_RECORD_BYTES {
        return Err(Stop::Oversized(len));
    }
    let payload = bytes
        .get(FRAME_BYTES as usize..FRAME_BYTES as usize + len as usize)
        .ok_or(Stop::Torn)?;
    if crc32(payload) != crc {
        return Err(Stop::Checksum);
    }
    Ok(payload)
}

/// Fills `buf` as far as the reader goes; returns how many bytes were read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// CRC-32 (IEEE 802.3, as in zlib and gzip): a table-driven implementation, so the format
/// needs no extra dependency.
pub fn crc32(bytes: &[u8]) -> u32 {
    static TABLE: std::sync::LazyLock<[u32; 256]> = std::sync::LazyLock::new(|| {
        let mut table = [0u32; 256];
        for (i, entry) in table.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *entry = c;
        }
        table
    });
    let mut crc = !0u32;
    for &b in bytes {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn headers_are_checked() {
        assert_eq!(check_header(&header()), Ok(()));
        assert_eq!(check_header(b"short"), Err(HeaderError::NotASegment));
        let mut newer = header();
        newer[8] = 2;
        assert_eq!(check_header(&newer), Err(HeaderError::Version(2)));
    }

    #[test]
    fn scans_whole_records_and_stops_at_a_torn_one() {
        let mut file = Vec::new();
        file.extend(frame(b"one"));
        file.extend(frame(b"two!"));
        let whole = scan(&file[..]).unwrap();
        assert_eq!(whole.records.len(), 2);
        assert_eq!(whole.stop, None);
        assert_eq!(whole.good_len, HEADER_BYTES + file.len() as u64);
        let torn = scan(&file[..file.len() - 1]).unwrap();
        assert_eq!(torn.records.len(), 1);
        assert_eq!(torn.stop, Some(Stop::Torn));
        assert_eq!(payload(&file[..11]), Ok(&b"one"[..]));
    }
}
