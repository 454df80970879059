//! The message after DATA, as the session reads it (`kuvert_mail::smtp::data`). The first two
//! bytes choose the line limit and the message limit, the third how the input is cut into the
//! pieces a socket would give. Checked:
//! - the outcome does not depend on where the pieces break;
//! - the data ends exactly at the first CRLF.CRLF (counting the CRLF of the DATA command),
//!   and nowhere else: no bare LF or CR can end it (SMTP smuggling);
//! - an accepted message has CRLF line ends only, no NUL, lines within the limit, and at most
//!   the bytes allowed, and a client sending it again (dot-stuffed) gets it back unchanged;
//! - a valid message made from the input, dot-stuffed as Kuvert's own SMTP client sends it
//!   (`data::dot_stuff`), is read back as it was, and whatever follows it is left for the
//!   next command.
#![no_main]

use kuvert_mail::smtp::data::{self, DataReader, RawLine, Refusal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let [a, b, c, payload @ ..] = input else {
        return;
    };
    // From 3 (a "." line must fit) to 1023; the default is 1000.
    let limit = 3 + usize::from(*a) * 4;
    let max = if *b == 255 {
        usize::MAX
    } else {
        usize::from(*b) * 64
    };

    // Anything, as sent.
    let whole = data::read(payload, limit, max);
    assert_eq!(chunked(payload, limit, max, *c), whole, "pieces changed it");
    let end = find(&[b"\r\n", payload].concat(), b"\r\n.\r\n").map(|i| i + 3);
    assert_eq!(
        whole.as_ref().map(|w| w.1),
        end,
        "the data ends at CRLF.CRLF"
    );
    if let Some((Ok(message), _)) = &whole {
        valid(message, limit, max);
        let again = data::dot_stuff(message);
        assert_eq!(
            data::read(&again, limit, max),
            Some((Ok(message.clone()), again.len()))
        );
    }

    // A valid message made from the input: its lines, without CR and NUL, cut to the limit.
    let mut message = Vec::new();
    for line in payload.split(|&x| x == b'\n') {
        let line: Vec<u8> = line
            .iter()
            .copied()
            .filter(|&x| x != b'\r' && x != 0)
            .take(limit - 2)
            .collect();
        message.extend_from_slice(&line);
        message.extend_from_slice(b"\r\n");
    }
    let want = if message.len() > max {
        Err(Refusal::TooBig)
    } else {
        Ok(message.clone())
    };
    {
        let mut sent = data::dot_stuff(&message);
        let n = sent.len();
        sent.extend_from_slice(b"QUIT\r\n");
        assert_eq!(
            data::read(&sent, limit, max),
            Some((want.clone(), n)),
            "{message:?}"
        );
        assert_eq!(chunked(&sent, limit, max, *c), Some((want.clone(), n)));
    }
});

/// What an accepted message must be.
fn valid(m: &[u8], limit: usize, max: usize) {
    assert!(m.len() <= max);
    assert!(m.is_empty() || m.ends_with(b"\r\n"));
    assert!(!m.contains(&0));
    for (i, &x) in m.iter().enumerate() {
        match x {
            b'\r' => assert_eq!(m.get(i + 1), Some(&b'\n'), "bare CR"),
            b'\n' => assert!(i > 0 && m[i - 1] == b'\r', "bare LF"),
            _ => {}
        }
    }
    for line in m.split(|&x| x == b'\n') {
        assert!(
            line.len() <= limit - 1,
            "CR included, a line fits the limit"
        );
    }
}

/// As `data::read`, but fed in pieces as a socket would give them.
fn chunked(
    input: &[u8],
    limit: usize,
    max: usize,
    seed: u8,
) -> Option<(Result<Vec<u8>, Refusal>, usize)> {
    let mut rng = u32::from(seed) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        1 + (rng % 64) as usize
    };
    let mut reader = DataReader::new(max);
    let mut line = RawLine::default();
    let mut at = 0;
    // The piece the "socket" has given and not yet consumed.
    let mut piece_end = 0;
    loop {
        line.clear();
        loop {
            if at == input.len() {
                return None;
            }
            if at == piece_end {
                piece_end = (at + next()).min(input.len());
            }
            let (take, done) = line.feed(&input[at..piece_end], limit);
            at += take;
            if done {
                break;
            }
        }
        if reader.line(&line) {
            return Some((reader.finish(), at));
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
