//! The pages as askama templates (src/web/templates/) and the plain data they show: every
//! value a template prints is escaped by askama (the templates are `.html`), so a file
//! named `<script>` is text. Sizes and dates are formatted here, in UTC.

use super::assets;
use super::drive::{CategoryRow, CategoryState, Entry, EntryKind};
use super::error::FrontError;
use crate::keyservice::server::WebSession;
use askama::Template;

/// What every page shows around its content: the stylesheet and, when signed in, the
/// account and the sign-out form with its token.
pub struct Chrome {
    pub css: &'static str,
    pub icon: &'static str,
    pub user: Option<User>,
}

pub struct User {
    pub account: String,
    pub csrf: String,
}

impl Chrome {
    pub fn anonymous() -> Self {
        Chrome {
            css: assets::css_href(),
            icon: assets::icon_href(),
            user: None,
        }
    }

    pub fn signed_in(s: &WebSession) -> Self {
        Chrome {
            user: Some(User {
                account: s.account.clone(),
                csrf: s.csrf.clone(),
            }),
            ..Chrome::anonymous()
        }
    }
}

#[derive(Template)]
#[template(path = "signin.html", config = "src/web/templates/askama.toml")]
pub struct SignInPage {
    pub chrome: Chrome,
    pub error: Option<String>,
    pub notice: Option<String>,
    /// What the user typed, shown again after a failure.
    pub account: String,
}

pub struct CategoryLine {
    pub name: String,
    pub href: Option<String>,
    pub class: &'static str,
    pub class_label: &'static str,
    pub state: &'static str,
    pub size: String,
    pub note: &'static str,
}

impl CategoryLine {
    pub fn new(r: &CategoryRow) -> Self {
        use super::drive::CategoryClass as C;
        let available = r.state == CategoryState::Available;
        CategoryLine {
            name: r.name.clone(),
            href: available.then(|| super::paths::href("/drive", &r.name, &[], true)),
            class: r.class.as_str(),
            class_label: match r.class {
                C::Standard => "Standard",
                C::Transit => "Transit",
                C::E2e => "End-to-end",
            },
            state: r.state.as_str(),
            size: match (available, r.size) {
                (true, Some(n)) => size(n),
                _ => "—".into(),
            },
            note: match r.state {
                CategoryState::Available => "Available",
                CategoryState::Locked => "End-to-end encrypted: not available on the web",
                CategoryState::Unavailable => "Only on your devices: not available on the web",
            },
        }
    }
}

/// The page an ADP sign-in waits on: the code to approve it with on a trusted device.
#[derive(Template)]
#[template(path = "approve.html", config = "src/web/templates/askama.toml")]
pub struct ApprovePage {
    pub chrome: Chrome,
    /// `XXXX-XXXX-XXXX-XXXX`.
    pub code: String,
    /// The release list, for the command shown.
    pub releasable: String,
}

#[derive(Template)]
#[template(path = "categories.html", config = "src/web/templates/askama.toml")]
pub struct CategoriesPage {
    pub chrome: Chrome,
    pub rows: Vec<CategoryLine>,
}

/// A link of the breadcrumbs (the last one is the current page).
pub struct Crumb {
    pub name: String,
    pub href: String,
}

/// The breadcrumbs of a path in a category: Drive, the category, each folder.
pub fn crumbs(category: &str, path: &[String]) -> Vec<Crumb> {
    let mut v = vec![
        Crumb {
            name: "Drive".into(),
            href: "/drive".into(),
        },
        Crumb {
            name: category.to_string(),
            href: super::paths::href("/drive", category, &[], true),
        },
    ];
    for i in 0..path.len() {
        v.push(Crumb {
            name: path[i].clone(),
            href: super::paths::href("/drive", category, &path[..=i], true),
        });
    }
    v
}

pub struct Line {
    pub name: String,
    pub href: String,
    pub kind: &'static str,
    pub size: String,
    pub modified: String,
    /// For search hits: the folder the entry is in.
    pub folder: Option<Crumb>,
    /// Made or changed on the web, waiting for a device.
    pub pending: bool,
    /// The delete form's target, in a category the web may change.
    pub delete: Option<String>,
    /// The rename and move form, likewise.
    pub rename: Option<Move>,
}

/// The rename and move form of a row: its target, and the folder the row is in (the
/// form's default), as a path from the category's root.
pub struct Move {
    pub action: String,
    pub folder: String,
}

impl Line {
    /// The row of `e`, an entry of the folder `dir` of `category`.
    pub fn new(category: &str, dir: &[String], e: &Entry) -> Self {
        let mut path = dir.to_vec();
        path.push(e.name.clone());
        Line {
            name: e.name.clone(),
            href: super::paths::href("/drive", category, &path, e.kind == EntryKind::Dir),
            kind: e.kind.as_str(),
            size: match e.kind {
                EntryKind::File => size(e.size),
                _ => "—".into(),
            },
            modified: date(e.modified),
            folder: None,
            pending: e.pending,
            delete: None,
            rename: None,
        }
    }
}

/// A column heading of the listing, a sort link when sorting applies.
pub struct SortLink {
    pub label: &'static str,
    pub class: &'static str,
    pub href: Option<String>,
    pub arrow: &'static str,
}

#[derive(Template)]
#[template(path = "folder.html", config = "src/web/templates/askama.toml")]
pub struct FolderPage {
    pub chrome: Chrome,
    pub title: String,
    pub category: String,
    pub crumbs: Vec<Crumb>,
    pub sorts: Vec<SortLink>,
    pub rows: Vec<Line>,
    /// The search form's target: this category's root.
    pub search_action: String,
    pub query: String,
    pub searching: bool,
    pub truncated: bool,
    /// Forms to change the folder, when the web may change the category: the upload's
    /// and the new folder's targets.
    pub changes: Option<Changes>,
    /// Changes made on the web in this category that no device has taken in yet.
    pub waiting: usize,
}

/// The targets of a folder's change forms.
pub struct Changes {
    pub upload: String,
    pub mkdir: String,
    /// The session's form token.
    pub csrf: String,
    /// The upload script's URL (progress and drag and drop).
    pub script: &'static str,
}

/// How the file page previews a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    Image,
    Audio,
    Video,
    None,
}

#[derive(Template)]
#[template(path = "file.html", config = "src/web/templates/askama.toml")]
pub struct FilePage {
    pub chrome: Chrome,
    pub crumbs: Vec<Crumb>,
    pub name: String,
    pub kind: &'static str,
    pub size: String,
    pub modified: String,
    /// A symlink's target (no download then).
    pub target: Option<String>,
    pub download: Option<String>,
    pub preview: Option<String>,
    pub media: Media,
}

#[derive(Template)]
#[template(path = "error.html", config = "src/web/templates/askama.toml")]
pub struct ErrorPage {
    pub chrome: Chrome,
    pub status: u16,
    pub title: &'static str,
    pub message: &'static str,
    pub back: &'static str,
    pub back_label: &'static str,
}

impl ErrorPage {
    /// The page of a failure. Only fixed text: details go to the log.
    pub fn of(e: &FrontError, chrome: Chrome) -> Self {
        let signed_in = chrome.user.is_some();
        let (title, message) = match e {
            FrontError::NotFound => (
                "Not found",
                "There is no such category, folder or file in this drive.",
            ),
            FrontError::Locked => (
                "Locked",
                "This category is end-to-end encrypted: only your devices have its key, so \
                 it is not available on the web.",
            ),
            FrontError::NotOnWeb => (
                "Not available on the web",
                "This category is not available on the web. Open it on one of your devices.",
            ),
            FrontError::AdpOn => (
                "Web access is off",
                "Advanced Data Protection is on for this account, so web access is off.",
            ),
            FrontError::SignedOut => ("Signed out", "Your session ended. Sign in again."),
            FrontError::OtherServer => (
                "Sign in again",
                "This sign-in was approved on another server of the service (or the server \
                 restarted), and only that server can open what your device released. Sign \
                 out and sign in again.",
            ),
            FrontError::Csrf => (
                "Refused",
                "This form was not sent from this page's session. Go back, reload the page \
                 and try again.",
            ),
            FrontError::TooLarge => ("Too large", "The request was too large."),
            FrontError::ReadOnly(why) => ("Not changed", *why),
            FrontError::Quota => (
                "Waiting for your devices",
                "Too much of what you changed on the web is still waiting for one of your \
                 devices to take it in. Let a device sync (cirrus sync), then try again.",
            ),
            FrontError::Busy => (
                "Busy",
                "The server is busy or the request took too long. Try again in a moment.",
            ),
            FrontError::Unavailable(_) => (
                "Drive unavailable",
                "The drive cannot be read right now. Try again later.",
            ),
            FrontError::Integrity(_) => (
                "Drive failed verification",
                "What the storage holds for this drive did not verify, so nothing of it is \
                 shown. Check the drive from one of your devices (cirrus fsck).",
            ),
            FrontError::Internal(_) => (
                "Something went wrong",
                "The server could not answer this request. Try again later.",
            ),
        };
        let (back, back_label) = if signed_in {
            ("/drive", "Back to the drive")
        } else {
            ("/signin", "Sign in")
        };
        ErrorPage {
            chrome,
            status: e.status(),
            title,
            message,
            back,
            back_label,
        }
    }
}

/// Bytes as a person reads them ("1.2 MiB").
pub fn size(n: u64) -> String {
    crate::hint::human(n)
}

/// `YYYY-MM-DD HH:MM`, UTC; "—" when unknown.
pub fn date(secs: Option<i64>) -> String {
    secs.and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(|t| t.strftime("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "—".into())
}

/// Renders a template; a failure (none is expected: the templates are checked when
/// compiled) is an internal error.
pub fn render(t: &impl Template) -> Result<String, FrontError> {
    t.render()
        .map_err(|e| FrontError::Internal(format!("rendering a page: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::front::drive::CategoryClass;

    const HOSTILE: &str = "<img src=x onerror=alert(1)>";

    fn user() -> Chrome {
        Chrome {
            user: Some(User {
                account: "alice".into(),
                csrf: "c".repeat(64),
            }),
            ..Chrome::anonymous()
        }
    }

    fn entry(name: &str, kind: EntryKind) -> Entry {
        Entry {
            name: name.into(),
            kind,
            size: 1_258_291,
            modified: Some(1_700_000_000),
            target: None,
            pending: false,
        }
    }

    #[test]
    fn a_hostile_name_is_text_everywhere() {
        let page = FolderPage {
            chrome: user(),
            title: HOSTILE.into(),
            category: HOSTILE.into(),
            crumbs: crumbs(HOSTILE, &[HOSTILE.to_string()]),
            sorts: vec![],
            rows: vec![Line {
                delete: Some(super::super::paths::href(
                    "/delete",
                    HOSTILE,
                    &[HOSTILE.into()],
                    false,
                )),
                rename: Some(Move {
                    action: super::super::paths::href("/rename", HOSTILE, &[HOSTILE.into()], false),
                    folder: format!("/{HOSTILE}"),
                }),
                pending: true,
                ..Line::new(HOSTILE, &[], &entry(HOSTILE, EntryKind::File))
            }],
            search_action: "/drive/x/".into(),
            query: format!("\"{HOSTILE}"),
            searching: true,
            truncated: false,
            changes: Some(Changes {
                upload: "/upload/x/".into(),
                mkdir: "/mkdir/x/".into(),
                csrf: "ab".repeat(32),
                script: "/static/upload.js",
            }),
            waiting: 1,
        };
        let html = render(&page).unwrap();
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("&#60;img src=x onerror=alert(1)&#62;")
                || html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        // In attributes too: the quote cannot close data-name or value.
        assert!(!html.contains("value=\"\"<"), "{html}");
        assert!(html.contains("href=\"/drive/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E/%3Cimg"));
        let file = FilePage {
            chrome: user(),
            crumbs: crumbs("c", &[]),
            name: HOSTILE.into(),
            kind: "file",
            size: size(3),
            modified: date(None),
            target: Some(HOSTILE.into()),
            download: None,
            preview: None,
            media: Media::None,
        };
        assert!(!render(&file).unwrap().contains("<img"));
        let signin = SignInPage {
            chrome: Chrome::anonymous(),
            error: Some(HOSTILE.into()),
            notice: None,
            account: format!("\">{HOSTILE}"),
        };
        assert!(!render(&signin).unwrap().contains("<img"));
    }

    #[test]
    fn pages_carry_the_contract_ids() {
        let html = render(&SignInPage {
            chrome: Chrome::anonymous(),
            error: Some("wrong".into()),
            notice: None,
            account: String::new(),
        })
        .unwrap();
        for needle in [
            "<form id=\"signin\" method=\"post\" action=\"/signin\">",
            "name=\"account\"",
            "name=\"password\"",
            "name=\"totp\" type=\"text\" inputmode=\"numeric\" autocomplete=\"one-time-code\"",
            "type=\"submit\" id=\"signin-submit\"",
            "<p class=\"error\" id=\"signin-error\"",
        ] {
            assert!(html.contains(needle), "{needle} in {html}");
        }
        assert!(!html.contains("id=\"signout\""));
        let rows = [
            CategoryRow {
                name: "Photos".into(),
                class: CategoryClass::Standard,
                size: Some(2048),
                state: CategoryState::Available,
            },
            CategoryRow {
                name: "Health".into(),
                class: CategoryClass::E2e,
                size: None,
                state: CategoryState::Locked,
            },
        ];
        let html = render(&CategoriesPage {
            chrome: user(),
            rows: rows.iter().map(CategoryLine::new).collect(),
        })
        .unwrap();
        for needle in [
            "<table id=\"categories\"",
            "<tr class=\"category\" data-name=\"Photos\" data-state=\"available\">",
            "<a href=\"/drive/Photos/\">",
            "<span class=\"badge class-standard\">",
            "2.0 KiB",
            "data-name=\"Health\" data-state=\"locked\"",
            "<span class=\"badge class-e2e\">",
            "End-to-end encrypted: not available on the web",
            "<form id=\"signout\" method=\"post\" action=\"/signout\">",
            &format!("name=\"csrf\" value=\"{}\"", "c".repeat(64)),
        ] {
            assert!(html.contains(needle), "{needle} in {html}");
        }
        assert!(!html.contains("href=\"/drive/Health/\""));
    }

    #[test]
    fn the_approval_page_shows_the_code_and_the_command_and_reloads_itself() {
        let html = render(&ApprovePage {
            chrome: user(),
            code: "ABCD-EFGH-JKMN-PQRS".into(),
            releasable: "Photos, Notes".into(),
        })
        .unwrap();
        for needle in [
            "<meta http-equiv=\"refresh\" content=\"5\">",
            "id=\"approve-code\" aria-label=\"Sign-in code\">ABCD-EFGH-JKMN-PQRS</p>",
            "id=\"approve-command\">cirrus web approve ABCD-EFGH-JKMN-PQRS --category Photos</pre>",
            "can be released: Photos, Notes.",
            "<form id=\"signout\" method=\"post\" action=\"/signout\">",
        ] {
            assert!(html.contains(needle), "{needle} in {html}");
        }
        // No script of any kind on it: the CSP forbids inline ones, and it needs none.
        assert!(!html.contains("<script"));
    }

    #[test]
    fn sizes_and_dates() {
        assert_eq!(size(1_258_291), "1.2 MiB");
        assert_eq!(size(512), "512 B");
        assert_eq!(date(Some(1_700_000_000)), "2023-11-14 22:13");
        assert_eq!(date(Some(0)), "1970-01-01 00:00");
        assert_eq!(date(None), "—");
        assert_eq!(date(Some(i64::MAX)), "—");
    }
}
