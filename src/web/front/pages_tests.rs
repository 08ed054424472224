//! The browsing pages over an in-memory drive.

use super::*;
use crate::web::front::drive::{
    CategoryClass, CategoryRow, CategoryState, CategoryView, DriveView, FileView, Found,
};
use std::collections::BTreeMap;
use std::sync::Arc;

type Tree = BTreeMap<Vec<String>, (Entry, Vec<u8>)>;

/// One account ("alice") with Photos (standard), Health (e2e, locked) and Maps (on no
/// list).
struct Mem {
    photos: Arc<Tree>,
}

struct MemDrive {
    photos: Arc<Tree>,
}

struct MemCat {
    tree: Arc<Tree>,
}

struct MemFile(Vec<u8>);

fn p(s: &str) -> Vec<String> {
    s.split('/')
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

fn mem() -> Mem {
    let mut t = Tree::new();
    let mut add = |path: &str, kind: EntryKind, data: &[u8], modified: i64| {
        let v = p(path);
        let name = v.last().cloned().unwrap_or_default();
        let e = Entry {
            name,
            kind,
            size: data.len() as u64,
            modified: Some(modified),
            target: (kind == EntryKind::Symlink).then(|| "../elsewhere".to_string()),
            pending: false,
        };
        t.insert(v, (e, data.to_vec()));
    };
    add("2024", EntryKind::Dir, b"", 100);
    add("2024/beach.JPG", EntryKind::File, b"jpegbytes", 300);
    add("2024/notes.txt", EntryKind::File, b"hello", 200);
    add("<img src=x onerror=alert(1)>", EntryKind::File, b"x", 50);
    add("big.bin", EntryKind::File, &[7u8; 3000], 400);
    add("link", EntryKind::Symlink, b"", 10);
    Mem {
        photos: Arc::new(t),
    }
}

impl DriveSource for Mem {
    fn open(&self, who: &Viewer) -> Result<Box<dyn DriveView>, FrontError> {
        if who.account != "alice" {
            return Err(FrontError::SignedOut);
        }
        Ok(Box::new(MemDrive {
            photos: self.photos.clone(),
        }))
    }
}

impl DriveView for MemDrive {
    fn categories(&self) -> Result<Vec<CategoryRow>, FrontError> {
        let row = |name: &str, class, state| CategoryRow {
            name: name.into(),
            class,
            size: Some(3014),
            state,
        };
        Ok(vec![
            row("Photos", CategoryClass::Standard, CategoryState::Available),
            row("Health", CategoryClass::E2e, CategoryState::Locked),
            row("Maps", CategoryClass::Standard, CategoryState::Unavailable),
        ])
    }

    fn category(&self, name: &str) -> Result<Arc<dyn CategoryView>, FrontError> {
        match name {
            "Photos" => Ok(Arc::new(MemCat {
                tree: self.photos.clone(),
            })),
            "Health" => Err(FrontError::Locked),
            "Maps" => Err(FrontError::NotOnWeb),
            _ => Err(FrontError::NotFound),
        }
    }
}

impl CategoryView for MemCat {
    fn stat(&self, path: &[String]) -> Result<Entry, FrontError> {
        self.tree
            .get(path)
            .map(|(e, _)| e.clone())
            .ok_or(FrontError::NotFound)
    }

    fn list(&self, path: &[String]) -> Result<Vec<Entry>, FrontError> {
        if !path.is_empty() && self.stat(path)?.kind != EntryKind::Dir {
            return Err(FrontError::NotFound);
        }
        Ok(self
            .tree
            .iter()
            .filter(|(k, _)| k.len() == path.len() + 1 && k.starts_with(path))
            .map(|(_, (e, _))| e.clone())
            .collect())
    }

    fn search(&self, needle: &str, limit: usize) -> Result<Vec<Found>, FrontError> {
        let needle = needle.to_lowercase();
        Ok(self
            .tree
            .iter()
            .filter(|(_, (e, _))| e.name.to_lowercase().contains(&needle))
            .take(limit)
            .map(|(k, (e, _))| Found {
                folder: k[..k.len() - 1].to_vec(),
                entry: e.clone(),
            })
            .collect())
    }

    fn open_file(&self, path: &[String]) -> Result<Arc<dyn FileView>, FrontError> {
        match self.tree.get(path) {
            Some((e, data)) if e.kind == EntryKind::File => Ok(Arc::new(MemFile(data.clone()))),
            _ => Err(FrontError::NotFound),
        }
    }
}

impl FileView for MemFile {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, FrontError> {
        let o = usize::try_from(offset).unwrap();
        Ok(self.0[o..o + len].to_vec())
    }
}

fn chrome() -> Chrome {
    Chrome::anonymous()
}

fn page(path: &str, query: Option<&str>) -> Result<Outcome, FrontError> {
    drive(
        &mem(),
        &Viewer::of("alice"),
        chrome(),
        &paths::parse(path).unwrap(),
        query,
    )
}

fn html(path: &str, query: Option<&str>) -> String {
    match page(path, query) {
        Ok(Outcome::Page(h)) => h,
        Ok(Outcome::Redirect(to)) => panic!("{path}: redirect to {to}"),
        Err(e) => panic!("{path}: {e}"),
    }
}

/// The `data-name`s of the listing's rows, in order.
fn names(html: &str) -> Vec<String> {
    html.split("<tr class=\"entry\" data-name=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_string())
        .collect()
}

#[test]
fn the_category_list_shows_every_state() {
    let Ok(Outcome::Page(h)) = categories(&mem(), &Viewer::of("alice"), chrome()) else {
        panic!()
    };
    assert!(h.contains("data-name=\"Photos\" data-state=\"available\""));
    assert!(h.contains("data-name=\"Health\" data-state=\"locked\""));
    assert!(h.contains("data-name=\"Maps\" data-state=\"unavailable\""));
    assert!(h.contains("Only on your devices: not available on the web"));
}

#[test]
fn folders_list_sorted_with_folders_first() {
    let h = html("Photos/", None);
    assert!(h.contains("<table id=\"listing\""));
    assert!(h.contains("<nav id=\"breadcrumbs\""));
    assert!(h.contains("<form id=\"search\" method=\"get\""));
    assert_eq!(
        names(&h),
        [
            "2024",
            "&#60;img src=x onerror=alert(1)&#62;",
            "big.bin",
            "link"
        ]
    );
    assert!(!h.contains("<img src"));
    assert!(h.contains("data-name=\"2024\" data-kind=\"dir\""));
    assert!(h.contains("href=\"/drive/Photos/2024/\""));
    assert!(h.contains("data-name=\"link\" data-kind=\"symlink\""));
    assert!(h.contains("2.9 KiB"));
    let h = html("Photos/", Some("sort=size&order=desc"));
    assert_eq!(names(&h)[..2], ["2024", "big.bin"]);
    // The active column's link flips the order.
    assert!(
        h.contains("href=\"?sort=size&#38;order=asc\"")
            || h.contains("href=\"?sort=size&amp;order=asc\"")
    );
    let h = html("Photos/2024/", Some("sort=modified"));
    assert_eq!(names(&h), ["notes.txt", "beach.JPG"]);
    assert!(h.contains("1970-01-01 00:03"));
}

#[test]
fn search_covers_the_category() {
    let h = html("Photos/2024/", Some("q=NOTES"));
    assert_eq!(names(&h), ["notes.txt"]);
    assert!(h.contains("href=\"/drive/Photos/2024/notes.txt\""));
    assert!(h.contains("in 2024"));
    let h = html("Photos/", Some("q=zzz"));
    assert!(names(&h).is_empty() && h.contains("Nothing matches"));
    // The table is there even when empty, so scripts and tests find it.
    assert!(h.contains("<table id=\"listing\""));
}

#[test]
fn files_have_a_page_and_folders_a_slash() {
    let h = html("Photos/2024/beach.JPG", None);
    assert!(h.contains("<a id=\"download\" class=\"button primary\" href=\"/file/Photos/2024/beach.JPG?download=1\">"));
    assert!(h.contains("<a id=\"preview\" class=\"button\" href=\"/file/Photos/2024/beach.JPG\">"));
    assert!(h.contains("<img src=\"/file/Photos/2024/beach.JPG\""));
    let h = html("Photos/big.bin", None);
    assert!(h.contains("id=\"download\"") && !h.contains("id=\"preview\""));
    let h = html("Photos/link", None);
    assert!(!h.contains("id=\"download\"") && h.contains("../elsewhere"));
    assert!(
        matches!(page("Photos/2024", None), Ok(Outcome::Redirect(to)) if to == "/drive/Photos/2024/")
    );
    assert!(matches!(page("Photos", None), Ok(Outcome::Redirect(to)) if to == "/drive/Photos/"));
}

#[test]
fn unknown_locked_and_foreign_paths() {
    for path in [
        "Nope/",
        "Photos/nope/",
        "Photos/nope",
        "Photos/big.bin/",
        "photos/",
    ] {
        assert!(
            matches!(page(path, None), Err(FrontError::NotFound)),
            "{path}"
        );
    }
    assert!(matches!(page("Health/", None), Err(FrontError::Locked)));
    assert!(matches!(page("Maps/x", None), Err(FrontError::NotOnWeb)));
    // The drive is opened for the session's account only.
    let r = drive(
        &mem(),
        &Viewer::of("bob"),
        chrome(),
        &paths::parse("Photos/").unwrap(),
        None,
    );
    assert!(r.is_err());
}

#[test]
fn downloads_open_only_regular_files() {
    let open =
        |path: &str| open_download(&mem(), &Viewer::of("alice"), &paths::parse(path).unwrap());
    let d = open("Photos/2024/notes.txt").unwrap();
    assert_eq!((d.name.as_str(), d.file.size()), ("notes.txt", 5));
    assert_eq!(d.file.read_at(1, 3).unwrap(), b"ell");
    for path in [
        "Photos/2024",
        "Photos/2024/",
        "Photos/link",
        "Photos",
        "Photos/",
        "Health/x",
    ] {
        assert!(open(path).is_err(), "{path}");
    }
}
