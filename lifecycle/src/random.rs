//! Reproducible test data: a failing echo check can be rerun with the
//! very same bytes.

/// A deterministic pseudo-random byte stream (xorshift64*): the same seed
/// gives the same bytes, so a failing echo test can be rerun exactly.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Reproducible text: printable ASCII lines of 1 to `max_line` bytes
/// (newline included), `len` bytes in all, ending with a newline. For
/// clients built on fgets()/fputs(), which stop at a NUL: the binary
/// checks are separate.
pub fn random_lines(seed: u64, len: usize, max_line: usize) -> Vec<u8> {
    let raw = random_bytes(seed, len);
    let lengths = random_bytes(seed ^ 0x5eed, len / 2 + 8);
    let mut out = Vec::with_capacity(len);
    let mut next_len = lengths.chunks(2).map(|c| {
        let n = u16::from_le_bytes([c[0], c.get(1).copied().unwrap_or(0)]) as usize;
        1 + n % max_line
    });
    let mut left_in_line = next_len.next().unwrap_or(1);
    for b in raw {
        if out.len() + 1 == len || left_in_line == 1 {
            out.push(b'\n');
            left_in_line = next_len.next().unwrap_or(1);
        } else {
            // ' ' (0x20) to '~' (0x7e): 95 printable characters.
            out.push(b' ' + b % 95);
            left_in_line -= 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_lines_are_printable_lines_of_the_length_asked() {
        let text = random_lines(7, 100_000, 300);
        assert_eq!(text.len(), 100_000);
        assert_eq!(text.last(), Some(&b'\n'));
        assert!(
            text.iter()
                .all(|&b| b == b'\n' || (b' '..=b'~').contains(&b))
        );
        let longest = text.split(|&b| b == b'\n').map(<[u8]>::len).max();
        assert!(longest.is_some_and(|n| n < 300), "{longest:?}");
        assert_eq!(text, random_lines(7, 100_000, 300));
    }
}
