//! Which files a browser may show inline, and how a download is named. Only a fixed list
//! of types a browser renders without running anything is inline, chosen by the file's
//! extension (the server never sniffs content); everything else, SVG and HTML included,
//! is `application/octet-stream` as an attachment.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Extension (lower case) → the type it is served inline as.
const SAFE: &[(&str, &str)] = &[
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("pdf", "application/pdf"),
    ("mp3", "audio/mpeg"),
    ("m4a", "audio/mp4"),
    ("ogg", "audio/ogg"),
    ("oga", "audio/ogg"),
    ("opus", "audio/ogg"),
    ("mp4", "video/mp4"),
    ("m4v", "video/mp4"),
    ("webm", "video/webm"),
    ("txt", TEXT),
    ("text", TEXT),
    ("log", TEXT),
    ("md", TEXT),
    ("csv", TEXT),
];

/// Plain text, whatever its extension says it is.
pub const TEXT: &str = "text/plain; charset=utf-8";
/// Everything not on the list.
pub const OPAQUE: &str = "application/octet-stream";

/// How a page shows a previewable file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preview {
    Image,
    Audio,
    Video,
    /// PDF and text: a link to open it (they cannot be framed: `frame-ancestors 'none'`).
    Link,
}

/// The inline type of a file name, if it is on the safe list.
pub fn safe_type(name: &str) -> Option<&'static str> {
    let (_, ext) = name.rsplit_once('.')?;
    SAFE.iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(ext))
        .map(|(_, t)| *t)
}

/// How the file page previews a safe type.
pub fn preview(name: &str) -> Option<Preview> {
    let t = safe_type(name)?;
    Some(if t.starts_with("image/") {
        Preview::Image
    } else if t.starts_with("audio/") {
        Preview::Audio
    } else if t.starts_with("video/") {
        Preview::Video
    } else {
        Preview::Link
    })
}

/// RFC 8187's attr-char: what may stand unencoded in `filename*`.
const ATTR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `Content-Disposition` naming the file: `attachment; filename*=UTF-8''...` (or
/// `inline; ...`). Only the encoded form is given, so no quote or control character of
/// the name can reach the header.
pub fn disposition(attachment: bool, name: &str) -> String {
    format!(
        "{}; filename*=UTF-8''{}",
        if attachment { "attachment" } else { "inline" },
        utf8_percent_encode(name, ATTR)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_safe_list_is_inline_case_insensitive() {
        assert_eq!(safe_type("a.PNG"), Some("image/png"));
        assert_eq!(safe_type("x.tar.JpEg"), Some("image/jpeg"));
        assert_eq!(safe_type("notes.txt"), Some(TEXT));
        assert_eq!(safe_type("song.opus"), Some("audio/ogg"));
        assert_eq!(safe_type("clip.webm"), Some("video/webm"));
        assert_eq!(safe_type("doc.pdf"), Some("application/pdf"));
        for unsafe_name in [
            "x.svg",
            "x.html",
            "x.htm",
            "x.xhtml",
            "x.js",
            "x.xml",
            "x.css",
            "png",
            "x.",
            "",
            "x.png.html",
            "x.exe",
        ] {
            assert_eq!(safe_type(unsafe_name), None, "{unsafe_name}");
        }
        assert_eq!(preview("a.jpg"), Some(Preview::Image));
        assert_eq!(preview("a.m4a"), Some(Preview::Audio));
        assert_eq!(preview("a.mp4"), Some(Preview::Video));
        assert_eq!(preview("a.pdf"), Some(Preview::Link));
        assert_eq!(preview("a.svg"), None);
    }

    #[test]
    fn disposition_encodes_the_name() {
        assert_eq!(
            disposition(true, "report 2024.pdf"),
            "attachment; filename*=UTF-8''report%202024.pdf"
        );
        assert_eq!(
            disposition(false, "été\"; x=\r\n.txt"),
            "inline; filename*=UTF-8''%C3%A9t%C3%A9%22%3B%20x%3D%0D%0A.txt"
        );
        let d = disposition(true, "<img src=x onerror=alert(1)>");
        assert_eq!(
            d,
            "attachment; filename*=UTF-8''%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E"
        );
    }
}
