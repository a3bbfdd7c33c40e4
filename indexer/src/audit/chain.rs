//! Reading a chain file front to back, one framed record at a time, in bounded memory.
//!
//! The reader checks framing only (header, lengths, frame checksums); chain hashes are the
//! caller's business, so [`super::AuditLog::open`] can rebuild its state without hashing and
//! [`super::verify`] can hash everything.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::error::{AuditError, Result};
use super::format::{self, Digest, HEADER_LEN, MAX_RECORD, PREFIX_LEN, SUFFIX_LEN, check_header};

/// What the next step through a chain file found.
#[derive(Debug)]
pub enum Frame<'a> {
    /// A whole record whose frame checksum holds.
    Record {
        /// The event id kept beside the record (not evidence: see [`super::format`]).
        id: u128,
        /// The stored JSON bytes.
        bytes: &'a [u8],
        /// The chain hash stored after them.
        hash: Digest,
    },
    /// The file ends after the last whole record.
    End,
    /// The rest of the file, from `offset`, is not a whole record: what a crash mid-append
    /// leaves behind (a short frame, or a last frame that fails its checksum).
    Torn {
        /// First byte that is not part of a whole record.
        offset: u64,
        /// Why.
        reason: String,
    },
    /// The header is not this day's v1 header.
    BadHeader {
        /// Why.
        reason: String,
    },
    /// A record with more bytes after it fails its checksum or has an impossible length:
    /// not a crash tail, so damage or an edit.
    Damaged {
        /// Where the bad record starts.
        offset: u64,
        /// Why.
        reason: String,
    },
}

/// A chain file opened for reading.
pub struct ChainReader {
    path: PathBuf,
    r: BufReader<File>,
    file_len: u64,
    offset: u64,
    buf: Vec<u8>,
    header_checked: bool,
    day: String,
    done: bool,
}

impl ChainReader {
    /// Opens `day`'s chain file. Only bytes present now are read: records appended while
    /// reading are left for the next reader, so a reader sees one consistent prefix.
    pub fn open(path: &Path, day: &str) -> Result<ChainReader> {
        let file = File::open(path).map_err(|e| AuditError::io("cannot open", path, e))?;
        let file_len = file
            .metadata()
            .map_err(|e| AuditError::io("cannot stat", path, e))?
            .len();
        Ok(ChainReader {
            path: path.to_path_buf(),
            r: BufReader::with_capacity(1 << 20, file),
            file_len,
            offset: 0,
            buf: Vec::new(),
            header_checked: false,
            day: day.to_string(),
            done: false,
        })
    }

    /// Offset just past the last whole record returned so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Size of the file when it was opened.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    fn read(&mut self, n: usize) -> Result<()> {
        self.buf.resize(n, 0);
        let path = &self.path;
        self.r
            .read_exact(&mut self.buf[..n])
            .map_err(|e| AuditError::io("cannot read", path, e))
    }

    /// The next frame. After anything but [`Frame::Record`], every later call returns
    /// [`Frame::End`].
    pub fn next_frame(&mut self) -> Result<Frame<'_>> {
        if self.done {
            return Ok(Frame::End);
        }
        if !self.header_checked {
            self.header_checked = true;
            if self.file_len < HEADER_LEN as u64 {
                self.done = true;
                return Ok(Frame::Torn {
                    offset: 0,
                    reason: format!(
                        "the file is {} bytes, shorter than its {HEADER_LEN}-byte header",
                        self.file_len
                    ),
                });
            }
            self.read(HEADER_LEN)?;
            let mut h = [0u8; HEADER_LEN];
            h.copy_from_slice(&self.buf[..HEADER_LEN]);
            if let Err(reason) = check_header(&h, &self.day) {
                self.done = true;
                return Ok(Frame::BadHeader { reason });
            }
            self.offset = HEADER_LEN as u64;
        }
        let remaining = self.file_len - self.offset;
        if remaining == 0 {
            self.done = true;
            return Ok(Frame::End);
        }
        let framing = (PREFIX_LEN + SUFFIX_LEN) as u64;
        if remaining < framing {
            self.done = true;
            return Ok(Frame::Torn {
                offset: self.offset,
                reason: format!("the last {remaining} bytes are shorter than a record frame"),
            });
        }
        self.read(PREFIX_LEN)?;
        let len = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        let mut idb = [0u8; 16];
        idb.copy_from_slice(&self.buf[4..20]);
        let id = u128::from_le_bytes(idb);
        if u64::from(len) > remaining - framing {
            self.done = true;
            return Ok(Frame::Torn {
                offset: self.offset,
                reason: format!(
                    "record length {len} runs past the end of the file ({remaining} bytes left)"
                ),
            });
        }
        if len > MAX_RECORD {
            self.done = true;
            return Ok(Frame::Damaged {
                offset: self.offset,
                reason: format!("record length {len} is over the {MAX_RECORD}-byte limit"),
            });
        }
        let body = len as usize + SUFFIX_LEN;
        self.read(body)?;
        let bytes_end = len as usize;
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&self.buf[bytes_end..bytes_end + 32]);
        let hash = Digest(hash);
        let mut sum = [0u8; 8];
        sum.copy_from_slice(&self.buf[bytes_end + 32..bytes_end + 40]);
        let frame_end = self.offset + framing + u64::from(len);
        if format::check(id, &self.buf[..bytes_end], &hash) != u64::from_le_bytes(sum) {
            self.done = true;
            let reason = "record fails its frame checksum".to_string();
            if frame_end == self.file_len {
                return Ok(Frame::Torn {
                    offset: self.offset,
                    reason: format!("the last {reason} (torn write)"),
                });
            }
            return Ok(Frame::Damaged {
                offset: self.offset,
                reason: format!("{reason}: its length, id, bytes or stored hash were changed"),
            });
        }
        self.offset = frame_end;
        Ok(Frame::Record {
            id,
            bytes: &self.buf[..bytes_end],
            hash,
        })
    }
}
