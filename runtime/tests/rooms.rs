//! The runtime's rooms import one way (see the crate docs):
//! `model` imports no room, `compile` and `analysis` import `model`, and
//! `solve` imports the three others. This test reads the sources and fails
//! on any `crate::<room>` path (or a crate-root re-export of a room's item)
//! in code that points the wrong way, so no module cycle can span two
//! rooms.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const ROOMS: [&str; 4] = ["model", "compile", "analysis", "solve"];

/// The rooms each room may import.
fn allowed(room: &str) -> &'static [&'static str] {
    match room {
        "model" => &[],
        "compile" | "analysis" => &["model"],
        "solve" => &["model", "compile", "analysis"],
        other => panic!("unknown room {other}"),
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Items the crate root re-exports, by the room they come from
/// (`pub use model::{Param, ...}` in lib.rs).
fn root_reexports() -> BTreeMap<String, String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut map = BTreeMap::new();
    let mut rest = lib.as_str();
    while let Some(i) = rest.find("pub use ") {
        rest = &rest[i + 8..];
        let end = rest.find(';').unwrap();
        let stmt = &rest[..end];
        if let Some((room, items)) = stmt.split_once("::") {
            if ROOMS.contains(&room) {
                let items = items.trim_matches(|c| c == '{' || c == '}');
                for item in items.split(',') {
                    let name = item.trim();
                    if !name.is_empty() {
                        map.insert(name.to_string(), room.to_string());
                    }
                }
            }
        }
        rest = &rest[end..];
    }
    map
}

/// The rooms that the code (not the comments) of `text` names.
fn imported_rooms(text: &str, reexports: &BTreeMap<String, String>) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + 7..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if ROOMS.contains(&name.as_str()) {
                found.push((n + 1, name));
            } else if let Some(room) = reexports.get(&name) {
                found.push((n + 1, room.clone()));
            } else if name.is_empty() {
                // `crate::{a, b}`: the braces name rooms or re-exports.
                let group: String = rest.chars().take_while(|c| *c != '}').collect();
                for item in group.trim_start_matches('{').split(',') {
                    let head = item.trim().split("::").next().unwrap_or("");
                    if ROOMS.contains(&head) {
                        found.push((n + 1, head.to_string()));
                    } else if let Some(room) = reexports.get(head) {
                        found.push((n + 1, room.clone()));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn rooms_import_one_way() {
    let reexports = root_reexports();
    assert!(reexports.contains_key("Param") && reexports.contains_key("Crux"));
    let mut violations = Vec::new();
    for room in ROOMS {
        let mut files = Vec::new();
        rust_files(&src().join(room), &mut files);
        assert!(!files.is_empty(), "room {room} has no sources");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (line, to) in imported_rooms(&text, &reexports) {
                if to != room && !allowed(room).contains(&to.as_str()) {
                    violations.push(format!("{}:{line}: {room} imports {to}", f.display()));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_checker_sees_imports() {
    let reexports = root_reexports();
    let text = "use crate::solve::Crux;\n// crate::solve in a comment\nlet x = crate::Crux::new;\nuse crate::{model::Param, Solution};";
    let rooms: Vec<String> = imported_rooms(text, &reexports)
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    assert_eq!(rooms, ["solve", "solve", "model", "solve"]);
}
