//! The layer rule of both service crates (`http` | `mcp` -> `service` -> `store` -> `domain`):
//! a file in a lower layer that names a higher layer, or a framework the layer must not know,
//! fails this test with its path and line.

use std::path::{Path, PathBuf};

/// For each folder, the names its files must not use.
const RULES: &[(&str, &[&str])] = &[
    (
        "src/domain",
        &[
            "axum",
            "rmcp",
            "sqlx",
            "reqwest",
            "crate::store",
            "crate::service",
            "crate::http",
            "crate::mcp",
            "crate::state",
            "AppState",
        ],
    ),
    (
        "src/store",
        &[
            "axum",
            "rmcp",
            "reqwest",
            "crate::service",
            "crate::http",
            "crate::mcp",
            "crate::state",
            "AppState",
        ],
    ),
    (
        "src/service",
        &["axum", "rmcp", "crate::http", "crate::mcp"],
    ),
];

const CRATES: &[&str] = &["crates/oauth-server", "crates/mcp-server"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    if dir.is_file() {
        out.push(dir.to_owned());
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every use of a banned name outside comments, as `path:line: name`.
fn violations(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for krate in CRATES {
        for (folder, banned) in RULES {
            let mut files = Vec::new();
            rust_files(&root.join(krate).join(folder), &mut files);
            for file in files {
                let text = std::fs::read_to_string(&file).unwrap();
                for (n, line) in text.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or("");
                    for name in *banned {
                        let hit = code.match_indices(name).any(|(i, _)| {
                            let before = code[..i].chars().next_back();
                            let after = code[i + name.len()..].chars().next();
                            let ident = |c: Option<char>| {
                                c.is_some_and(|c| c.is_alphanumeric() || c == '_')
                            };
                            !ident(before) && !ident(after)
                        });
                        if hit {
                            found.push(format!("{}:{}: {name}", file.display(), n + 1));
                        }
                    }
                }
            }
        }
    }
    found
}

#[test]
fn lower_layers_never_name_higher_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for krate in CRATES {
        for (folder, _) in RULES {
            let dir = root.join(krate).join(folder);
            if *krate == "crates/mcp-server" && *folder == "src/domain" && !dir.exists() {
                continue;
            }
            assert!(dir.exists(), "{} is missing", dir.display());
        }
    }
    let found = violations(root);
    assert!(found.is_empty(), "layer rule broken:\n{}", found.join("\n"));
}

#[test]
fn the_check_sees_a_violation() {
    let dir = std::env::temp_dir().join(format!("layers-{}", std::process::id()));
    let store = dir.join("crates/oauth-server/src/store");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(
        store.join("bad.rs"),
        "// crate::http in a comment is fine\nuse crate::http::router;\nuse axum_like::X;\n",
    )
    .unwrap();
    let found = violations(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].ends_with("bad.rs:2: crate::http"), "{found:?}");
}
