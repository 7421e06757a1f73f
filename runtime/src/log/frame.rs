//! A record's frame on disk: payload length, CRC32C of the payload, then the payload (the
//! codec's tagged bincode). The frame is what tells a whole record from a torn or damaged
//! one; snapshot files use the same frame.

/// Bytes before the payload: length (u32 LE) and CRC32C (u32 LE).
pub const HEADER_LEN: usize = 8;

/// The largest payload a frame may carry; a longer length field is damage, not data.
pub const MAX_PAYLOAD: u32 = 64 << 20;

/// Appends the frame of `payload` to `out`.
pub fn write(payload: &[u8], out: &mut Vec<u8>) {
    // Payloads come from the codec and are bounded by the HTTP limits, far below u32.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Appends a frame to `out` whose payload `fill` writes in place (no extra buffer).
pub fn write_with<E>(
    out: &mut Vec<u8>,
    fill: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    if let Err(error) = fill(out) {
        out.truncate(start);
        return Err(error);
    }
    let payload = &out[start + HEADER_LEN..];
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let crc = crc32c::crc32c(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// What the bytes at a position hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A whole frame whose checksum matches; `size` includes the header.
    Whole {
        /// The payload.
        payload: &'a [u8],
        /// Header plus payload.
        size: usize,
    },
    /// The bytes end before the frame does: a torn write, if nothing valid follows.
    Incomplete,
    /// Only zero bytes remain: space allocated but never written.
    Zeros,
    /// A frame that cannot be right.
    Bad(String),
}

/// Reads the frame at the start of `bytes`.
pub fn parse(bytes: &[u8]) -> Parsed<'_> {
    parse_up_to(bytes, MAX_PAYLOAD)
}

/// Reads the frame at the start of `bytes`, allowing payloads up to `max` bytes.
pub fn parse_up_to(bytes: &[u8], max: u32) -> Parsed<'_> {
    let Some((header, rest)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return if bytes.iter().all(|&b| b == 0) && !bytes.is_empty() {
            Parsed::Zeros
        } else {
            Parsed::Incomplete
        };
    };
    let (len, crc) = header.split_at(4);
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
    let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if len == 0 && bytes.iter().all(|&b| b == 0) {
        return Parsed::Zeros;
    }
    if len == 0 || len > max {
        return Parsed::Bad(format!("frame length {len} is outside 1..={max}"));
    }
    let Some(payload) = rest.get(..len as usize) else {
        return Parsed::Incomplete;
    };
    let actual = crc32c::crc32c(payload);
    if actual != crc {
        return Parsed::Bad(format!(
            "checksum mismatch: frame says {crc:#010x}, payload has {actual:#010x}"
        ));
    }
    Parsed::Whole {
        payload,
        size: HEADER_LEN + len as usize,
    }
}

/// Whether a whole, valid frame starts anywhere in `bytes` after its first byte: tells a
/// torn tail (nothing valid follows) from damage in the middle (good records follow).
pub fn any_valid_after(bytes: &[u8]) -> bool {
    (1..bytes.len()).any(|start| matches!(parse(&bytes[start..]), Parsed::Whole { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_frame_parses_back() {
        let mut bytes = Vec::new();
        write(b"hello", &mut bytes);
        write(b"world!", &mut bytes);
        let Parsed::Whole { payload, size } = parse(&bytes) else {
            panic!("expected a whole frame");
        };
        assert_eq!((payload, size), (&b"hello"[..], 13));
        assert!(matches!(
            parse(&bytes[size..]),
            Parsed::Whole {
                payload: b"world!",
                ..
            }
        ));
    }

    #[test]
    fn damage_is_told_from_a_torn_tail() {
        let mut bytes = Vec::new();
        write(b"hello", &mut bytes);
        assert_eq!(parse(&bytes[..10]), Parsed::Incomplete);
        assert_eq!(parse(&bytes[..3]), Parsed::Incomplete);
        assert_eq!(parse(&[0, 0, 0, 0, 0]), Parsed::Zeros);
        let mut flipped = bytes.clone();
        flipped[9] ^= 0x40;
        assert!(matches!(parse(&flipped), Parsed::Bad(reason) if reason.contains("checksum")));
        let mut huge = bytes.clone();
        huge[3] = 0xff;
        assert!(matches!(parse(&huge), Parsed::Bad(reason) if reason.contains("length")));
        let mut two = bytes.clone();
        write(b"next", &mut two);
        assert!(any_valid_after(&two[1..]));
        assert!(!any_valid_after(&bytes[..10]));
    }
}
