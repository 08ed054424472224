//! Paths in the front's URLs: `/drive/CAT/A/B/` and `/file/CAT/A/B`, each segment a
//! percent-encoded name. Decoded here from the raw request path, segment by segment, so
//! an encoded `/` stays inside its name and can never add a level; `.`, `..` and empty
//! segments are refused (404), so no URL climbs out of its category.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Everything but RFC 3986's unreserved characters is encoded in a segment we write.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A category path taken from a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrivePath {
    pub category: String,
    /// Names below the category's root.
    pub path: Vec<String>,
    /// The URL ended with `/`: a folder is asked for.
    pub folder: bool,
}

/// One decoded segment, or `None` when it cannot name an entry.
pub fn decode_segment(raw: &str) -> Option<String> {
    let name = percent_decode_str(raw).decode_utf8().ok()?;
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return None;
    }
    Some(name.into_owned())
}

/// The path after a route's prefix (`rest` is `CAT/A/B/`, still encoded). `None`: not a
/// path of any entry.
pub fn parse(rest: &str) -> Option<DrivePath> {
    let folder = rest.ends_with('/');
    let trimmed = rest.strip_suffix('/').unwrap_or(rest);
    let mut segments = trimmed.split('/');
    let category = decode_segment(segments.next()?)?;
    let path = segments
        .map(decode_segment)
        .collect::<Option<Vec<String>>>()?;
    // Deeper than any change may name (FORMAT.md §9f): no page of ours links there, and
    // the work of a page grows with its depth.
    if path.len() > crate::format::web_change::MAX_DEPTH + 1 {
        return None;
    }
    Some(DrivePath {
        category,
        path,
        folder,
    })
}

/// A name as a URL segment.
pub fn encode_segment(name: &str) -> String {
    utf8_percent_encode(name, SEGMENT).to_string()
}

/// `PREFIX/CAT/A/B` with every segment encoded, and a final `/` for a folder.
pub fn href(prefix: &str, category: &str, path: &[String], folder: bool) -> String {
    let mut s = String::from(prefix);
    s.push('/');
    s.push_str(&encode_segment(category));
    for name in path {
        s.push('/');
        s.push_str(&encode_segment(name));
    }
    if folder {
        s.push('/');
    }
    s
}

/// The decoded value of `key` in a query string, if present.
pub fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_decode_and_refuse_climbing() {
        assert_eq!(decode_segment("a%20b").as_deref(), Some("a b"));
        assert_eq!(decode_segment("%C3%A9t%C3%A9").as_deref(), Some("été"));
        assert_eq!(decode_segment("x+y").as_deref(), Some("x+y"));
        for bad in [
            "", ".", "..", "%2E%2E", "%2e.", "a%2Fb", "a%00", "%FF", "%C3",
        ] {
            assert_eq!(decode_segment(bad), None, "{bad}");
        }
    }

    #[test]
    fn paths_parse_with_folders_and_refuse_dots() {
        let p = parse("Photos/2024/a%20b.jpg").unwrap();
        assert_eq!(p.category, "Photos");
        assert_eq!(p.path, vec!["2024".to_string(), "a b.jpg".to_string()]);
        assert!(!p.folder);
        let p = parse("Photos/").unwrap();
        assert!(p.path.is_empty() && p.folder);
        let p = parse("Photos").unwrap();
        assert!(p.path.is_empty() && !p.folder);
        for bad in [
            "",
            "/",
            "Photos/../Notes/",
            "Photos/%2E%2E/x",
            "Photos//x",
            "Photos/a/./b",
            "..",
            "Photos/a%2F..%2Fb",
        ] {
            // An encoded slash is refused, not split: no level can be added or removed.
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn hrefs_encode_every_segment() {
        let names = vec!["a b".to_string(), "<x>&\"'?#%/".to_string()];
        assert_eq!(
            href("/drive", "My Photos", &names, true),
            "/drive/My%20Photos/a%20b/%3Cx%3E%26%22%27%3F%23%25%2F/"
        );
        assert_eq!(href("/file", "N", &[], false), "/file/N");
        // What we write parses back to the same names.
        let h = href("/drive", "été", &names[..1], false);
        let p = parse(h.strip_prefix("/drive/").unwrap()).unwrap();
        assert_eq!((p.category.as_str(), p.path), ("été", names[..1].to_vec()));
    }

    #[test]
    fn query_values_decode() {
        assert_eq!(
            query_value(Some("sort=size&q=a+b%26c"), "q").as_deref(),
            Some("a b&c")
        );
        assert_eq!(query_value(Some("sort=size"), "q"), None);
        assert_eq!(query_value(None, "q"), None);
    }
}
