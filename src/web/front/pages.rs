//! The browsing pages, built on a blocking thread from a [`DriveSource`]: the category
//! list, a folder (sorted, or a search of its category), a file's page, and the file a
//! download opens. Kept apart from the HTTP handlers so they can be tested with an
//! in-memory drive.

use super::download::Download;
use super::drive::{DriveSource, Entry, EntryKind, Viewer};
use super::error::FrontError;
use super::mime;
use super::paths::{self, DrivePath};
use super::view::{self, Chrome, Crumb, Line, Media, SortLink};

/// Most search hits shown.
pub const MAX_RESULTS: usize = 500;
/// Longest search text taken.
const MAX_QUERY: usize = 200;

/// What a browsing request answers.
pub enum Outcome {
    /// A page (status 200).
    Page(String),
    /// 303 to this location (a folder asked without its final `/`, and the reverse).
    Redirect(String),
}

/// `GET /drive`.
pub fn categories(
    src: &dyn DriveSource,
    who: &Viewer,
    chrome: Chrome,
) -> Result<Outcome, FrontError> {
    let rows = src.open(who)?.categories()?;
    view::render(&view::CategoriesPage {
        chrome,
        rows: rows.iter().map(view::CategoryLine::new).collect(),
    })
    .map(Outcome::Page)
}

/// `GET /drive/CAT/...`: a folder (URL ending in `/`) or a file's page.
pub fn drive(
    src: &dyn DriveSource,
    who: &Viewer,
    chrome: Chrome,
    p: &DrivePath,
    query: Option<&str>,
) -> Result<Outcome, FrontError> {
    let drive = src.open(who)?;
    let cat = drive.category(&p.category)?;
    if !p.folder {
        if p.path.is_empty() {
            return Ok(Outcome::Redirect(paths::href(
                "/drive",
                &p.category,
                &[],
                true,
            )));
        }
        let e = cat.stat(&p.path)?;
        return match e.kind {
            EntryKind::Dir => Ok(Outcome::Redirect(paths::href(
                "/drive",
                &p.category,
                &p.path,
                true,
            ))),
            EntryKind::File | EntryKind::Symlink => file_page(chrome, p, &e).map(Outcome::Page),
        };
    }
    let search_action = paths::href("/drive", &p.category, &[], true);
    let q: String = paths::query_value(query, "q")
        .unwrap_or_default()
        .trim()
        .chars()
        .take(MAX_QUERY)
        .collect();
    let mut page = view::FolderPage {
        chrome,
        title: p.path.last().unwrap_or(&p.category).clone(),
        category: p.category.clone(),
        crumbs: view::crumbs(&p.category, &p.path),
        sorts: Vec::new(),
        rows: Vec::new(),
        search_action,
        query: q.clone(),
        searching: !q.is_empty(),
        truncated: false,
        changes: None,
        waiting: 0,
    };
    let csrf = page.chrome.user.as_ref().map(|u| u.csrf.clone());
    // Recently Deleted is the devices' to restore or empty: no changes in it.
    let in_recently_deleted = p
        .path
        .first()
        .is_some_and(|d| d.as_bytes() == crate::volume::RECENTLY_DELETED);
    if let Some(csrf) = csrf.filter(|_| cat.writable() && !in_recently_deleted) {
        page.changes = Some(view::Changes {
            upload: paths::href("/upload", &p.category, &p.path, true),
            mkdir: paths::href("/mkdir", &p.category, &p.path, true),
            csrf,
            script: super::assets::upload_js_href(),
        });
    }
    if page.searching {
        let mut hits = cat.search(&q, MAX_RESULTS + 1)?;
        page.truncated = hits.len() > MAX_RESULTS;
        hits.truncate(MAX_RESULTS);
        hits.sort_by(|a, b| (&a.folder, &a.entry.name).cmp(&(&b.folder, &b.entry.name)));
        page.sorts = headings(None);
        page.rows = hits
            .iter()
            .map(|h| Line {
                folder: Some(folder_crumb(&p.category, &h.folder)),
                ..Line::new(&p.category, &h.folder, &h.entry)
            })
            .collect();
    } else {
        let mut entries = cat.list(&p.path)?;
        let sort = Sort::from_query(query);
        sort.apply(&mut entries);
        page.sorts = headings(Some(sort));
        let deletable = page.changes.is_some();
        page.waiting = entries.iter().filter(|e| e.pending).count();
        page.rows = entries
            .iter()
            .map(|e| {
                let mut line = Line::new(&p.category, &p.path, e);
                let rd = p.path.is_empty() && e.name.as_bytes() == crate::volume::RECENTLY_DELETED;
                // A waiting change is the devices' to apply: deleting or moving what it
                // made waits until then.
                if deletable && !rd && !e.pending {
                    let mut path = p.path.clone();
                    path.push(e.name.clone());
                    line.delete = Some(paths::href("/delete", &p.category, &path, false));
                    line.rename = Some(view::Move {
                        action: paths::href("/rename", &p.category, &path, false),
                        folder: format!("/{}", p.path.join("/")),
                    });
                }
                line
            })
            .collect();
    }
    view::render(&page).map(Outcome::Page)
}

/// Where a search hit is: its folder, as a link.
fn folder_crumb(category: &str, folder: &[String]) -> Crumb {
    Crumb {
        name: if folder.is_empty() {
            category.to_string()
        } else {
            folder.join("/")
        },
        href: paths::href("/drive", category, folder, true),
    }
}

fn file_page(chrome: Chrome, p: &DrivePath, e: &Entry) -> Result<String, FrontError> {
    let file = e.kind == EntryKind::File;
    let raw = paths::href("/file", &p.category, &p.path, false);
    let preview = (file && mime::safe_type(&e.name).is_some()).then(|| raw.clone());
    let media = match mime::preview(&e.name) {
        Some(mime::Preview::Image) => Media::Image,
        Some(mime::Preview::Audio) => Media::Audio,
        Some(mime::Preview::Video) => Media::Video,
        _ => Media::None,
    };
    let dir = &p.path[..p.path.len().saturating_sub(1)];
    view::render(&view::FilePage {
        chrome,
        crumbs: {
            let mut c = view::crumbs(&p.category, dir);
            c.push(Crumb {
                name: e.name.clone(),
                href: String::new(),
            });
            c
        },
        name: e.name.clone(),
        kind: e.kind.as_str(),
        size: view::size(e.size),
        modified: view::date(e.modified),
        target: if file { None } else { e.target.clone() },
        download: file.then(|| format!("{raw}?download=1")),
        preview,
        media,
    })
}

/// `GET /file/CAT/PATH`: the regular file to send. Folders, symlinks and the category
/// itself are not files: 404.
pub fn open_download(
    src: &dyn DriveSource,
    who: &Viewer,
    p: &DrivePath,
) -> Result<Download, FrontError> {
    if p.folder || p.path.is_empty() {
        return Err(FrontError::NotFound);
    }
    let drive = src.open(who)?;
    let cat = drive.category(&p.category)?;
    let e = cat.stat(&p.path)?;
    if e.kind != EntryKind::File {
        return Err(FrontError::NotFound);
    }
    Ok(Download {
        file: cat.open_file(&p.path)?,
        name: e.name,
        modified: e.modified,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Name,
    Size,
    Modified,
}

/// A listing's order: `?sort=name|size|modified&order=asc|desc`. Folders come first
/// whatever the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub desc: bool,
}

impl Sort {
    pub fn from_query(query: Option<&str>) -> Sort {
        let key = match paths::query_value(query, "sort").as_deref() {
            Some("size") => SortKey::Size,
            Some("modified") => SortKey::Modified,
            _ => SortKey::Name,
        };
        let desc = paths::query_value(query, "order").as_deref() == Some("desc");
        Sort { key, desc }
    }

    pub fn apply(self, entries: &mut [Entry]) {
        let by_name = |a: &Entry, b: &Entry| {
            a.name
                .to_lowercase()
                .cmp(&b.name.to_lowercase())
                .then_with(|| a.name.cmp(&b.name))
        };
        entries.sort_by(|a, b| {
            let folders_first = (a.kind != EntryKind::Dir).cmp(&(b.kind != EntryKind::Dir));
            let ord = match self.key {
                SortKey::Name => by_name(a, b),
                SortKey::Size => a.size.cmp(&b.size).then_with(|| by_name(a, b)),
                SortKey::Modified => a.modified.cmp(&b.modified).then_with(|| by_name(a, b)),
            };
            folders_first.then(if self.desc { ord.reverse() } else { ord })
        });
    }
}

/// The listing's column headings; with `current`, each is a link that sorts by it (the
/// current column's link flips the order).
fn headings(current: Option<Sort>) -> Vec<SortLink> {
    let cols = [
        ("Name", "name", SortKey::Name, "col-name"),
        ("Size", "size", SortKey::Size, "num col-size"),
        (
            "Modified (UTC)",
            "modified",
            SortKey::Modified,
            "col-modified",
        ),
    ];
    cols.iter()
        .map(|&(label, param, key, class)| {
            let Some(cur) = current else {
                return SortLink {
                    label,
                    class,
                    href: None,
                    arrow: "",
                };
            };
            let active = cur.key == key;
            let desc = active && !cur.desc;
            SortLink {
                label,
                class,
                href: Some(format!(
                    "?sort={param}&order={}",
                    if desc { "desc" } else { "asc" }
                )),
                arrow: match (active, cur.desc) {
                    (false, _) => "",
                    (true, false) => "▲",
                    (true, true) => "▼",
                },
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "pages_tests.rs"]
mod tests;
