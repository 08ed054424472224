//! The forms that change a category from the web (issue 12 step c): upload files, make a
//! folder, rename or move an entry, delete one. Each is a POST with the session's form token; the change is
//! sealed into the category's inbox (FORMAT.md §9f), shown at once as waiting, and
//! applied by the next device that syncs. Answers with a redirect back to the folder.

use super::drive::{CategoryView, UploadSink};
use super::error::FrontError;
use super::paths::{self, DrivePath};
use super::{App, redirect, session, signin};
use axum::body::Body;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use std::sync::Arc;

/// Bytes of a request body read before they go to the store as one part.
const PIECE: usize = 1 << 20;

/// Longest form token read (it is 64 hex digits).
const MAX_TOKEN: usize = 128;

/// The path after `prefix` of a change's URL.
fn path_of(uri: &Uri, prefix: &str) -> Option<DrivePath> {
    uri.path().strip_prefix(prefix).and_then(paths::parse)
}

/// Where to go back to: the folder `dir` of `category`.
fn back(category: &str, dir: &[String]) -> Response {
    redirect(&paths::href("/drive", category, dir, true))
}

impl App {
    /// Opens category `name` of the viewer's drive for a change.
    async fn category_for_change(
        &self,
        who: super::drive::Viewer,
        name: String,
    ) -> Result<Arc<dyn CategoryView>, FrontError> {
        let src = self.drive.clone();
        self.blocking(move || src.open(&who)?.category(&name)).await
    }
}

/// `POST /mkdir/CAT/PATH/` (form: `csrf`, `name`).
pub async fn mkdir(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    let (s, who) = match app.viewer(&headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let res = async {
        let form = signin::read_form(&app, body).await?;
        session::check_form(&headers, &s, form.get("csrf"))?;
        let p = path_of(&uri, "/mkdir/")
            .filter(|p| p.folder)
            .ok_or(FrontError::NotFound)?;
        let name = form.get("name").unwrap_or_default().trim().to_string();
        if name.is_empty() {
            return Err(FrontError::ReadOnly("A new folder needs a name."));
        }
        let cat = app.category_for_change(who, p.category.clone()).await?;
        let dir = p.path.clone();
        app.blocking(move || cat.mkdir(&dir, &name)).await?;
        Ok(p)
    }
    .await;
    match res {
        Ok(p) => back(&p.category, &p.path),
        Err(e) => app.fail(e, Some(&s), &headers).await,
    }
}

/// `POST /delete/CAT/PATH` (form: `csrf`): the entry goes to Recently Deleted.
pub async fn delete(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    let (s, who) = match app.viewer(&headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let res = async {
        let form = signin::read_form(&app, body).await?;
        session::check_form(&headers, &s, form.get("csrf"))?;
        let p = path_of(&uri, "/delete/")
            .filter(|p| !p.path.is_empty())
            .ok_or(FrontError::NotFound)?;
        let cat = app.category_for_change(who, p.category.clone()).await?;
        let path = p.path.clone();
        app.blocking(move || cat.delete(&path)).await?;
        Ok(p)
    }
    .await;
    match res {
        Ok(p) => back(&p.category, &p.path[..p.path.len() - 1]),
        Err(e) => app.fail(e, Some(&s), &headers).await,
    }
}

/// `POST /rename/CAT/PATH` (form: `csrf`, `name`, `folder`: the folder to move to, as a
/// path from the category's root, `/` between names).
pub async fn rename(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    let (s, who) = match app.viewer(&headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let res = async {
        let form = signin::read_form(&app, body).await?;
        session::check_form(&headers, &s, form.get("csrf"))?;
        let p = path_of(&uri, "/rename/")
            .filter(|p| !p.path.is_empty())
            .ok_or(FrontError::NotFound)?;
        let name = form.get("name").unwrap_or_default().trim().to_string();
        if name.is_empty() {
            return Err(FrontError::ReadOnly("A name is needed."));
        }
        let to_dir: Vec<String> = form
            .get("folder")
            .unwrap_or_default()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let cat = app.category_for_change(who, p.category.clone()).await?;
        let path = p.path.clone();
        app.blocking(move || cat.rename(&path, &to_dir, &name))
            .await?;
        Ok(p)
    }
    .await;
    match res {
        Ok(p) => back(&p.category, &p.path[..p.path.len() - 1]),
        Err(e) => app.fail(e, Some(&s), &headers).await,
    }
}

/// `POST /upload/CAT/PATH/` (multipart: `csrf` first, then one `file` field per file).
pub async fn upload(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    mut form: Multipart,
) -> Response {
    let (s, who) = match app.viewer(&headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let res = async {
        // Nothing of a file is read before the token checks: it must come first, and
        // no more of it is read than a token's length.
        let token = match form.next_field().await {
            Ok(Some(f)) if f.name() == Some("csrf") => short_field(f).await,
            _ => None,
        };
        session::check_form(&headers, &s, token.as_deref())?;
        let p = path_of(&uri, "/upload/")
            .filter(|p| p.folder)
            .ok_or(FrontError::NotFound)?;
        let cat = app.category_for_change(who, p.category.clone()).await?;
        let mut files = 0usize;
        while let Some(field) = form.next_field().await.map_err(|_| FrontError::TooLarge)? {
            if field.name() != Some("file") {
                continue;
            }
            // Browsers send the base name; a path in it is cut off, never followed.
            let name = field
                .file_name()
                .and_then(|n| n.rsplit(['/', '\\']).next())
                .unwrap_or_default()
                .to_string();
            if name.is_empty() {
                continue; // the picker was left empty
            }
            upload_one(&app, &cat, &p.path, name, field).await?;
            files += 1;
        }
        log::info!(
            "web: {files} files uploaded to {} by {}",
            p.category,
            s.account
        );
        Ok(p)
    }
    .await;
    match res {
        Ok(p) => back(&p.category, &p.path),
        Err(e) => app.fail(e, Some(&s), &headers).await,
    }
}

/// A form field of at most [`MAX_TOKEN`] bytes, as text; `None` if longer or cut.
async fn short_field(mut f: axum::extract::multipart::Field<'_>) -> Option<String> {
    let mut v = Vec::new();
    while let Ok(Some(b)) = f.chunk().await {
        v.extend_from_slice(&b);
        if v.len() > MAX_TOKEN {
            return None;
        }
    }
    String::from_utf8(v).ok()
}

/// Streams one file of the form into an upload, a piece at a time on a blocking thread.
async fn upload_one(
    app: &App,
    cat: &Arc<dyn CategoryView>,
    dir: &[String],
    name: String,
    mut field: axum::extract::multipart::Field<'_>,
) -> Result<(), FrontError> {
    let (c, d) = (cat.clone(), dir.to_vec());
    let mut sink: Box<dyn UploadSink> = app.blocking(move || c.begin_upload(&d, &name)).await?;
    let mut buf = Vec::with_capacity(PIECE);
    loop {
        let chunk = match field.chunk().await {
            Ok(c) => c,
            Err(_) => {
                sink.abort();
                return Err(FrontError::TooLarge);
            }
        };
        let last = chunk.is_none();
        if let Some(b) = chunk {
            buf.extend_from_slice(&b);
        }
        if buf.len() >= PIECE || (last && !buf.is_empty()) {
            let data = std::mem::replace(&mut buf, Vec::with_capacity(PIECE));
            sink = app.blocking(move || write_piece(sink, &data)).await?;
        }
        if last {
            break;
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(0))
        .unwrap_or(0);
    app.blocking(move || sink.finish(now)).await
}

/// Writes one piece; a failed upload is given up (its stored parts deleted).
fn write_piece(
    mut sink: Box<dyn UploadSink>,
    data: &[u8],
) -> Result<Box<dyn UploadSink>, FrontError> {
    match sink.write(data) {
        Ok(()) => Ok(sink),
        Err(e) => {
            sink.abort();
            Err(e)
        }
    }
}
