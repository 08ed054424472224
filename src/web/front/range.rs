//! HTTP `Range` for downloads (RFC 9110 §14): one byte range is served as 206, so video
//! seeks and resumed downloads work. Several ranges at once are served as the whole file
//! (200): allowed by the RFC, and no browser needs multipart answers. A `bytes` range
//! that is malformed or that no byte of the file satisfies is 416; another unit is
//! ignored (200).

/// What to send for a file of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranged {
    /// 200, the whole file.
    Whole,
    /// 206, bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// 416, with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Reads a `Range` header value against the file's size.
pub fn parse(header: Option<&str>, size: u64) -> Ranged {
    let Some(h) = header else {
        return Ranged::Whole;
    };
    let Some((unit, set)) = h.trim().split_once('=') else {
        return Ranged::Unsatisfiable;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ranged::Whole;
    }
    if set.contains(',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = set.trim().split_once('-') else {
        return Ranged::Unsatisfiable;
    };
    let num = |s: &str| -> Option<u64> {
        // u64's parser takes a leading '+', which the grammar does not.
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (first, last) = (first.trim(), last.trim());
    match (first.is_empty(), num(first), num(last)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(n)) => {
            if n == 0 || size == 0 {
                Ranged::Unsatisfiable
            } else {
                Ranged::Part {
                    start: size.saturating_sub(n),
                    end: size - 1,
                }
            }
        }
        // bytes=A- and bytes=A-B.
        (false, Some(start), end) if last.is_empty() || end.is_some() => {
            let end = end.unwrap_or(u64::MAX);
            if end < start || start >= size {
                Ranged::Unsatisfiable
            } else {
                Ranged::Part {
                    start,
                    end: end.min(size - 1),
                }
            }
        }
        _ => Ranged::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::Ranged::*;
    use super::*;

    #[test]
    fn single_ranges() {
        let p = |h: &str, size| parse(Some(h), size);
        assert_eq!(parse(None, 10), Whole);
        assert_eq!(p("bytes=0-0", 10), Part { start: 0, end: 0 });
        assert_eq!(p("bytes=2-5", 10), Part { start: 2, end: 5 });
        assert_eq!(p("bytes=2-", 10), Part { start: 2, end: 9 });
        assert_eq!(p("bytes=-3", 10), Part { start: 7, end: 9 });
        // Past the end: clamped; more than the file: the whole file, as a part.
        assert_eq!(p("bytes=5-100", 10), Part { start: 5, end: 9 });
        assert_eq!(p("bytes=-100", 10), Part { start: 0, end: 9 });
        assert_eq!(p("bytes=9-9", 10), Part { start: 9, end: 9 });
        assert_eq!(p("Bytes = 1 - 2", 10), Part { start: 1, end: 2 });
        assert_eq!(
            p("bytes=0-18446744073709551615", 10),
            Part { start: 0, end: 9 }
        );
    }

    #[test]
    fn unsatisfiable_and_malformed_are_416() {
        let p = |h: &str, size| parse(Some(h), size);
        for h in [
            "bytes=10-",
            "bytes=10-20",
            "bytes=5-4",
            "bytes=-0",
            "bytes=-",
            "bytes=",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=1-+2",
            "bytes=-+2",
            "bytes=1",
            "bytes=18446744073709551616-",
            "nonsense",
        ] {
            assert_eq!(p(h, 10), Unsatisfiable, "{h}");
        }
        // An empty file has no byte to satisfy any range.
        assert_eq!(p("bytes=0-", 0), Unsatisfiable);
        assert_eq!(p("bytes=-1", 0), Unsatisfiable);
    }

    #[test]
    fn other_units_and_multiple_ranges_are_the_whole_file() {
        assert_eq!(parse(Some("items=0-1"), 10), Whole);
        assert_eq!(parse(Some("bytes=0-1,4-5"), 10), Whole);
    }
}
