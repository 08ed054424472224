//! The layer rule, checked: every `crate::MODULE` path in `src/` (in a `use`, grouped or
//! not, or inline in an expression) and every `super::` chain that climbs out of its
//! top-level module must name a module in a lower layer of the table in
//! docs/ARCHITECTURE.md ("Layers"). A top-level module of `src/lib.rs` missing from the
//! table, or a table row naming no module, fails too. The table is parsed from the
//! document, so the document and this test cannot drift apart.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::rust_files;
use std::collections::BTreeMap;
use std::path::Path;

/// Module name → layer number (higher is further up).
type Layers = BTreeMap<String, u32>;

/// Reads the first table after the `## Layers` heading: `| N | `a`, `b` | why |`.
fn parse_layers(doc: &str) -> Result<Layers, String> {
    let mut lines = doc.lines().skip_while(|l| l.trim() != "## Layers");
    if lines.next().is_none() {
        return Err("no `## Layers` heading".into());
    }
    let mut layers = Layers::new();
    let mut in_table = false;
    for line in lines {
        let t = line.trim();
        if !t.starts_with('|') {
            if in_table {
                break;
            }
            if t.starts_with("## ") {
                break;
            }
            continue;
        }
        in_table = true;
        let cells: Vec<&str> = t.trim_matches('|').split('|').map(str::trim).collect();
        let Ok(n) = cells[0].parse::<u32>() else {
            continue; // header or separator row
        };
        let names = cells.get(1).ok_or(format!("row without modules: {t}"))?;
        for name in names.split(',') {
            let name = name.trim().trim_matches('`');
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                return Err(format!("bad module name {name:?} in row: {t}"));
            }
            if layers.insert(name.to_string(), n).is_some() {
                return Err(format!("module {name} is in the table twice"));
            }
        }
    }
    if layers.is_empty() {
        return Err("the Layers table is empty".into());
    }
    Ok(layers)
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The text of a line without its `//` comment (a `//` inside a string cuts the line
/// short, which can only hide a path, never invent one).
fn code_of(line: &str) -> &str {
    line.find("//").map_or(line, |i| &line[..i])
}

/// Every top-level module a file at `rel` (e.g. `account/devices.rs`) names, with its
/// 1-based line: `crate::m`, `crate::{m, n::x}`, and `super::`×k chains that climb
/// to the crate root (k at least the file's module depth).
fn module_refs(rel: &str, src: &str) -> Vec<(usize, String)> {
    let depth = {
        let parts: Vec<&str> = rel.trim_end_matches(".rs").split('/').collect();
        let n = parts.len();
        if parts[n - 1] == "mod" { n - 1 } else { n }
    };
    // Keep line numbers: strip comments line by line, then join.
    let code: Vec<&str> = src.lines().map(code_of).collect();
    let text = code.join("\n");
    let line_at = |pos: usize| text[..pos].matches('\n').count() + 1;
    let mut out = Vec::new();
    let b = text.as_bytes();
    let starts_path = |i: usize| i == 0 || !(is_ident(b[i - 1] as char) || b[i - 1] == b'$');
    let mut i = 0;
    while i < b.len() {
        let rest = &text[i..];
        if starts_path(i) && rest.starts_with("crate::") {
            i += "crate::".len();
            if text[i..].starts_with('{') {
                // A group: the first segment of each item at depth 1.
                let mut d = 0;
                let mut expect = true;
                let mut j = i;
                while j < b.len() {
                    let c = b[j] as char;
                    match c {
                        '{' => {
                            d += 1;
                            expect = d == 1;
                        }
                        '}' => {
                            d -= 1;
                            if d == 0 {
                                break;
                            }
                        }
                        ',' if d == 1 => expect = true,
                        c if expect && is_ident(c) => {
                            let end = text[j..]
                                .find(|c: char| !is_ident(c))
                                .map_or(b.len(), |e| j + e);
                            let name = &text[j..end];
                            if name != "self" {
                                out.push((line_at(j), name.to_string()));
                            }
                            expect = false;
                            j = end;
                            continue;
                        }
                        _ => {}
                    }
                    j += 1;
                }
                i = j;
            } else {
                let end = text[i..]
                    .find(|c: char| !is_ident(c))
                    .map_or(b.len(), |e| i + e);
                if end > i {
                    out.push((line_at(i), text[i..end].to_string()));
                }
                i = end.max(i + 1);
            }
            continue;
        }
        if starts_path(i) && rest.starts_with("super::") {
            let mut k = 0;
            let mut j = i;
            while text[j..].starts_with("super::") {
                k += 1;
                j += "super::".len();
            }
            if k >= depth {
                let end = text[j..]
                    .find(|c: char| !is_ident(c))
                    .map_or(b.len(), |e| j + e);
                if end > j {
                    out.push((line_at(j), text[j..end].to_string()));
                }
            }
            i = j;
            continue;
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    out
}

/// The violations in one file: each names the file, the line and both layers.
fn check_file(layers: &Layers, rel: &str, src: &str) -> Vec<String> {
    let own = rel.split('/').next().unwrap_or(rel).trim_end_matches(".rs");
    let Some(&mine) = layers.get(own) else {
        return vec![format!(
            "src/{rel}: module `{own}` is not in the Layers table"
        )];
    };
    let mut bad = Vec::new();
    for (line, target) in module_refs(rel, src) {
        if target == own {
            continue;
        }
        // Names that are not top-level modules (items of lib.rs, say) carry no layer.
        let Some(&theirs) = layers.get(&target) else {
            continue;
        };
        if theirs >= mine {
            let dir = if theirs > mine { "up" } else { "sideways" };
            bad.push(format!(
                "src/{rel}:{line}: `{own}` (layer {mine}) uses `crate::{target}` (layer {theirs}): points {dir}"
            ));
        }
    }
    bad
}

fn top_level_modules(lib: &str) -> Vec<String> {
    lib.lines()
        .filter_map(|l| {
            let l = code_of(l).trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            let name = l.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(name.trim().to_string())
        })
        .collect()
}

#[test]
fn every_crate_path_points_down_the_layer_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
    let layers = parse_layers(&doc).unwrap();
    let src = root.join("src");
    let mut bad = Vec::new();
    let mods = top_level_modules(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    for m in &mods {
        if !layers.contains_key(m) {
            bad.push(format!(
                "src/lib.rs: module `{m}` is not in the Layers table of docs/ARCHITECTURE.md"
            ));
        }
    }
    for m in layers.keys() {
        if !mods.contains(m) {
            bad.push(format!("docs/ARCHITECTURE.md: the Layers table names `{m}`, which src/lib.rs does not declare"));
        }
    }
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        // The crate root and the binary sit above every layer.
        if rel == "lib.rs" || rel == "main.rs" {
            continue;
        }
        bad.extend(check_file(
            &layers,
            &rel,
            &std::fs::read_to_string(&f).unwrap(),
        ));
    }
    assert!(bad.is_empty(), "layer violations:\n{}", bad.join("\n"));
}

const TABLE: &str = "intro\n\n## Layers\n\ntext\n\n| layer | modules | why |\n|---|---|---|\n\
| 3 | `cli` | top |\n| 2 | `volume`, `home` | middle |\n| 1 | `crypto` | bottom |\n\nafter\n";

#[test]
fn the_table_parser_reads_layers() {
    let l = parse_layers(TABLE).unwrap();
    assert_eq!(l["cli"], 3);
    assert_eq!(l["volume"], 2);
    assert_eq!(l["home"], 2);
    assert_eq!(l["crypto"], 1);
    assert_eq!(l.len(), 4);
    assert!(parse_layers("no table here").is_err());
    assert!(parse_layers("## Layers\n| 1 | `a` | x |\n| 2 | `a` | y |\n").is_err());
}

#[test]
fn violations_are_found_with_file_and_line() {
    let l = parse_layers(TABLE).unwrap();
    // Down: fine. Comments and `$crate` are not paths.
    let ok = "use crate::crypto::seal;\n// crate::cli in a comment\nmacro_rules! m { () => { $crate::cli } }\n";
    assert!(check_file(&l, "home/mod.rs", ok).is_empty());
    // Sideways, in a `use`.
    let v = check_file(
        &l,
        "home/mod.rs",
        "use std::fs;\nuse crate::volume::HeadWitness;\n",
    );
    assert_eq!(v.len(), 1);
    assert!(
        v[0].starts_with("src/home/mod.rs:2:") && v[0].contains("sideways"),
        "{v:?}"
    );
    // Up, inline in an expression.
    let v = check_file(&l, "volume/io.rs", "fn f() {\n    crate::cli::run(1);\n}\n");
    assert!(
        v.len() == 1 && v[0].starts_with("src/volume/io.rs:2:") && v[0].contains("up"),
        "{v:?}"
    );
    // In a group spread over lines, nested groups included.
    let src = "use crate::{\n    crypto::{self, seal},\n    home::Home,\n    cli,\n};\n";
    let v = check_file(&l, "volume/mod.rs", src);
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v[0].starts_with("src/volume/mod.rs:3:") && v[1].starts_with("src/volume/mod.rs:4:"));
    // A `super::` chain that climbs out of the module.
    let v = check_file(
        &l,
        "volume/io.rs",
        "use super::super::cli::X;\nuse super::Category;\n",
    );
    assert!(
        v.len() == 1 && v[0].starts_with("src/volume/io.rs:1:"),
        "{v:?}"
    );
    // A file of a module the table does not know.
    let v = check_file(&l, "store/mod.rs", "");
    assert!(
        v.len() == 1 && v[0].contains("not in the Layers table"),
        "{v:?}"
    );
}

#[test]
fn lib_rs_modules_are_listed() {
    let m = top_level_modules("//! doc\npub mod a;\nmod b;\n#[cfg(test)]\nmod c;\npub use a::X;\n");
    assert_eq!(m, ["a", "b", "c"]);
}
