//! Layers: no module of a crate imports one that imports it back, directly or through others.
//!
//! [`assert_layered`] reads every `.rs` file under a crate's `src/` (a module per file:
//! `a/b.rs` and `a/b/mod.rs` are `a::b`; `lib.rs` and `main.rs` are the crate root) and the
//! paths it names: each `use` tree, and every `crate::…`, `$crate::…`, `super::…` and
//! `self::…` path anywhere in its code (comments and literals are skipped, and so are
//! `#[cfg(test)]` inline modules). A path depends on the module it names, or on its nearest
//! ancestor that is a file; a name a module re-exports from one of its children
//! (`pub use child::Thing`) leads on to that child. A module's own children, named by a bare
//! path (`child::Thing`), are not read: a parent contains its children.
//! [`assert_imports_downward`] checks, over the same graph, that no module imports from a
//! layer (a folder of `src`) above its own. Both run on the core, the first on
//! `octostore-http` as well: `cargo test -p octostore-core --test suite layers`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

/// Fails naming each cycle among the modules of the crate whose sources are `src`.
pub fn assert_layered(src: &Path) {
    let graph = module_graph(src);
    let tangles = tangles(&graph);
    if tangles.is_empty() {
        return;
    }
    let mut report = format!(
        "the modules of {} import each other in a cycle:\n",
        src.display()
    );
    for tangle in &tangles {
        let cycle = shortest_cycle(&graph, tangle);
        let cycle: Vec<String> = cycle.iter().map(|m| shown(m)).collect();
        report += &format!("  {}", cycle.join(" -> "));
        if tangle.len() > cycle.len() - 1 {
            let all: Vec<String> = tangle.iter().map(|m| shown(m)).collect();
            report += &format!(
                "\n    (one of the cycles among these {} modules: {})",
                tangle.len(),
                all.join(", ")
            );
        }
        report += "\n";
    }
    panic!("{report}");
}

/// Fails naming each import that goes up: `layers` are the folders of `src`, from the bottom
/// (a module belongs to the first whose name starts its path); the modules in none are the
/// top. A module may import from its own layer and those below.
pub fn assert_imports_downward(src: &Path, layers: &[&str]) {
    let layer = |module: &str| {
        let first = module.split("::").next().unwrap_or_default();
        layers
            .iter()
            .position(|&l| l == first)
            .unwrap_or(layers.len())
    };
    let name = |rank: usize| layers.get(rank).map_or("the top", |l| l);
    let mut upward = Vec::new();
    for (from, imports) in &module_graph(src) {
        for to in imports.iter().filter(|to| layer(to) > layer(from)) {
            upward.push(format!(
                "  {} (in {}) imports {} (in {})",
                shown(from),
                name(layer(from)),
                shown(to),
                name(layer(to))
            ));
        }
    }
    assert!(
        upward.is_empty(),
        "modules of {} import from a layer above their own:\n{}",
        src.display(),
        upward.join("\n")
    );
}

/// A module as a report names it.
fn shown(module: &str) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        format!("crate::{module}")
    }
}

#[test]
fn the_core_imports_in_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    assert_layered(&src);
    assert_imports_downward(&src, &["values", "records", "backend", "rules"]);
}

/// The HTTP crate's modules too (read from its sources beside this crate's).
#[test]
fn the_http_crate_imports_in_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../octostore-http/src");
    let graph = module_graph(&src);
    assert!(graph["routes"].contains("operation"), "{graph:#?}");
    assert_layered(&src);
}

/// The check reads what it should: a layered core would pass as well if nothing were read.
#[test]
fn the_cores_imports_are_read() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let imports = |module: &str| &graph[module];
    assert!(imports("store").contains("backend"), "{graph:#?}");
    assert!(imports("backend::memory").contains("backend"), "{graph:#?}");
    assert!(graph.values().map(BTreeSet::len).sum::<usize>() > 2 * graph.len());
}

#[test]
fn a_cycle_is_found_and_named() {
    let src = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = src.path().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    };
    write(
        "lib.rs",
        "mod a;\nmod b;\nmod c;\npub use c::deep::Thing;\n",
    );
    write(
        "a.rs",
        r###"use crate::{b::{self as bee, Item}, c};
        // crate::lone::x: a comment names no module; nor does a string:
        const S: &str = "super::b::x";
        const R: &str = r##"crate::c"##;
        fn f<'a>(x: &'a str) -> char { let _ = x; '{' }
        #[cfg(test)]
        mod tests { use crate::lone::X; }
        "###,
    );
    write(
        "b.rs",
        "pub struct Item;\nfn g() { crate::Thing::new(); }\n",
    );
    write("c/mod.rs", "pub mod deep;\n");
    write(
        "c/deep.rs",
        "pub struct Thing;\nimpl Thing { fn f() { super::super::a::f(); } }\n",
    );
    write("lone.rs", "use super::c::deep;\n");
    let graph = module_graph(src.path());
    let imports = |module: &str| graph[module].iter().cloned().collect::<Vec<_>>();
    assert_eq!(imports("a"), ["b", "c"]);
    assert_eq!(imports("b"), ["c::deep"], "through the root's re-export");
    assert_eq!(imports("c::deep"), ["a"]);
    assert_eq!(imports("lone"), ["c::deep"]);
    let up = std::panic::catch_unwind(|| assert_imports_downward(src.path(), &["a", "c"]));
    let report = up.unwrap_err().downcast_ref::<String>().unwrap().clone();
    assert!(
        report.contains("crate::a (in a) imports crate::b (in the top)"),
        "{report}"
    );
    let found = std::panic::catch_unwind(|| assert_layered(src.path())).unwrap_err();
    let report = found.downcast_ref::<String>().unwrap();
    assert!(
        report.contains("crate::a -> crate::b -> crate::c::deep -> crate::a"),
        "{report}"
    );
}

/// Each module (`""` for the root, else `a::b`) and the modules it imports.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files = module_files(src);
    let sources: BTreeMap<&String, Vec<Token>> = files
        .iter()
        .map(|(module, file)| {
            let text = fs::read_to_string(file)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
            (module, without_test_modules(tokens(&text)))
        })
        .collect();
    let re_exports: BTreeMap<&String, BTreeMap<String, String>> = sources
        .iter()
        .map(|(&module, tokens)| (module, child_re_exports(module, tokens, &files)))
        .collect();
    let resolve = |from: &str, path: &[String]| -> Option<String> {
        let mut full: Vec<&str> = match path.first().map(String::as_str) {
            Some("crate" | "$crate") => Vec::new(),
            Some("self" | "super") => from.split("::").filter(|s| !s.is_empty()).collect(),
            _ => return None,
        };
        let mut rest = path;
        if matches!(path[0].as_str(), "crate" | "$crate") {
            rest = &rest[1..];
        }
        while let Some(first) = rest.first() {
            match first.as_str() {
                "self" => {}
                "super" => {
                    full.pop()?;
                }
                _ => break,
            }
            rest = &rest[1..];
        }
        full.extend(rest.iter().map(String::as_str));
        let found = (0..=full.len())
            .rev()
            .map(|k| full[..k].join("::"))
            .find(|m| files.contains_key(m))?;
        let depth = if found.is_empty() {
            0
        } else {
            found.split("::").count()
        };
        let through = full
            .get(depth)
            .and_then(|name| re_exports[&found].get(*name));
        Some(through.cloned().unwrap_or(found))
    };
    sources
        .iter()
        .map(|(&module, tokens)| {
            let imports = named_paths(tokens)
                .iter()
                .filter_map(|path| resolve(module, path))
                .filter(|to| to != module)
                .collect();
            (module.clone(), imports)
        })
        .collect()
}

/// Every module under `src`, by path, and its file.
fn module_files(src: &Path) -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, src: &Path, out: &mut BTreeMap<String, PathBuf>) {
        let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, src, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path
                    .strip_prefix(src)
                    .expect("under src")
                    .with_extension("");
                let mut parts: Vec<String> = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if parts.last().is_some_and(|p| p == "mod") || parts == ["lib"] || parts == ["main"]
                {
                    parts.pop();
                }
                out.insert(parts.join("::"), path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, src, &mut out);
    assert!(
        out.contains_key(""),
        "{} holds no lib.rs or main.rs",
        src.display()
    );
    out
}

/// A token of Rust code, as far as paths need: names (`$crate` among them), `::`, and any
/// other punctuation one character at a time. Comments, literals and lifetimes are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Name(String),
    PathSep,
    Punct(char),
}

fn tokens(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let is_name = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            loop {
                if i >= chars.len() {
                    break;
                } else if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' {
            i = after_string(&chars, i + 1);
        } else if c == '\'' {
            if at(i + 1) == '\\' {
                // An escaped character: up to the closing quote.
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3; // A character.
            } else {
                i += 1; // A lifetime or label: its name follows, and is dropped.
                while i < chars.len() && is_name(chars[i]) {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit() {
            while i < chars.len()
                && (is_name(chars[i]) || chars[i] == '.' && at(i + 1).is_ascii_digit())
            {
                i += 1;
            }
        } else if is_name(c) || (c == '$' && is_name(at(i + 1))) {
            let start = i;
            i += 1;
            while i < chars.len() && is_name(chars[i]) {
                i += 1;
            }
            let name: String = chars[start..i].iter().collect();
            match (name.as_str(), at(i)) {
                ("b" | "c", '"') => i = after_string(&chars, i + 1),
                ("b", '\'') => {
                    i += 1;
                    while i < chars.len() && chars[i] != '\'' {
                        i += if chars[i] == '\\' { 2 } else { 1 };
                    }
                    i += 1;
                }
                ("r" | "br" | "cr", '"' | '#') => {
                    let hashes = chars[i..].iter().take_while(|&&c| c == '#').count();
                    if at(i + hashes) == '"' {
                        i += hashes + 1;
                        let closing: Vec<char> = std::iter::once('"')
                            .chain(std::iter::repeat_n('#', hashes))
                            .collect();
                        while i < chars.len() && !chars[i..].starts_with(&closing) {
                            i += 1;
                        }
                        i += closing.len();
                    } else {
                        // A raw name, `r#type`: the name after the hash.
                        i += 1;
                    }
                }
                _ => out.push(Token::Name(name)),
            }
        } else if c == ':' && at(i + 1) == ':' {
            out.push(Token::PathSep);
            i += 2;
        } else {
            out.push(Token::Punct(c));
            i += 1;
        }
    }
    out
}

/// The index after the string whose text starts at `i`.
fn after_string(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i] != '"' {
        i += if chars[i] == '\\' { 2 } else { 1 };
    }
    i + 1
}

fn name(token: Option<&Token>) -> Option<&str> {
    match token {
        Some(Token::Name(name)) => Some(name),
        _ => None,
    }
}

/// The tokens without the inline modules marked `#[cfg(test)]`.
fn without_test_modules(tokens: Vec<Token>) -> Vec<Token> {
    let is = |t: Option<&Token>, c: char| t == Some(&Token::Punct(c));
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let marks_test = is(tokens.get(i), '#')
            && is(tokens.get(i + 1), '[')
            && name(tokens.get(i + 2)) == Some("cfg")
            && is(tokens.get(i + 3), '(')
            && name(tokens.get(i + 4)) == Some("test")
            && is(tokens.get(i + 5), ')')
            && is(tokens.get(i + 6), ']');
        if marks_test {
            // Past further attributes and a visibility, to an inline `mod`, if that is what
            // is marked.
            let mut j = i + 7;
            while is(tokens.get(j), '#') {
                j = after_group(&tokens, j + 1);
            }
            if name(tokens.get(j)) == Some("pub") {
                j += 1;
                if is(tokens.get(j), '(') {
                    j = after_group(&tokens, j);
                }
            }
            if name(tokens.get(j)) == Some("mod")
                && name(tokens.get(j + 1)).is_some()
                && is(tokens.get(j + 2), '{')
            {
                i = after_group(&tokens, j + 2);
                continue;
            }
        }
        out.push(tokens[i].clone());
        i += 1;
    }
    out
}

/// The index after the bracketed group opening at `i` (`(`, `[` or `{`).
fn after_group(tokens: &[Token], mut i: usize) -> usize {
    let mut depth = 0usize;
    while let Some(token) = tokens.get(i) {
        match token {
            Token::Punct('(' | '[' | '{') => depth += 1,
            Token::Punct(')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// Each path of a `use` tree (its leaves, `a::b::{c, d::e}` as `a::b::c` and `a::b::d::e`),
/// and each `crate::`, `$crate::`, `super::` or `self::` path elsewhere.
fn named_paths(tokens: &[Token]) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let starts_path = i == 0 || tokens[i - 1] != Token::PathSep;
        match name(tokens.get(i)) {
            Some("use") if tokens.get(i + 1) != Some(&Token::Punct('<')) => {
                i = use_tree(tokens, i + 1, &[], &mut |path| paths.push(path));
            }
            Some("crate" | "$crate" | "super" | "self")
                if starts_path && tokens.get(i + 1) == Some(&Token::PathSep) =>
            {
                let mut path = Vec::new();
                while let Some(segment) = name(tokens.get(i)) {
                    path.push(segment.to_owned());
                    if tokens.get(i + 1) != Some(&Token::PathSep) {
                        break;
                    }
                    i += 2;
                }
                paths.push(path);
                i += 1;
            }
            _ => i += 1,
        }
    }
    paths
}

/// Reads the use tree at `i` under `prefix`, giving each leaf path to `leaf`; the index after
/// it.
fn use_tree(
    tokens: &[Token],
    mut i: usize,
    prefix: &[String],
    leaf: &mut dyn FnMut(Vec<String>),
) -> usize {
    let mut path = prefix.to_vec();
    if tokens.get(i) == Some(&Token::PathSep) {
        i += 1; // `use ::std::…`
    }
    loop {
        match tokens.get(i) {
            Some(Token::Name(segment)) => {
                path.push(segment.clone());
                i += 1;
                if tokens.get(i) == Some(&Token::PathSep) {
                    i += 1;
                    continue;
                }
                if name(tokens.get(i)) == Some("as") {
                    i += 2;
                }
                leaf(path);
                return i;
            }
            Some(Token::Punct('*')) => {
                leaf(path);
                return i + 1;
            }
            Some(Token::Punct('{')) => {
                i += 1;
                while i < tokens.len() && tokens[i] != Token::Punct('}') {
                    i = use_tree(tokens, i, &path, leaf);
                    if tokens.get(i) == Some(&Token::Punct(',')) {
                        i += 1;
                    }
                }
                return i + 1;
            }
            _ => return i,
        }
    }
}

/// The names `module` re-exports from its own children (`pub use child::thing::Name`), with
/// the child module each leads to.
fn child_re_exports(
    module: &str,
    tokens: &[Token],
    files: &BTreeMap<String, PathBuf>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let within = |names: &[&str]| {
        let mut full: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
        full.extend(names);
        (0..=full.len())
            .rev()
            .map(|k| full[..k].join("::"))
            .find(|m| files.contains_key(m))
    };
    for (i, token) in tokens.iter().enumerate() {
        if name(Some(token)) != Some("use") || i == 0 || name(tokens.get(i - 1)) != Some("pub") {
            continue;
        }
        let mut leaves = Vec::new();
        use_tree(tokens, i + 1, &[], &mut |path| leaves.push(path));
        for path in leaves {
            let names: Vec<&str> = path.iter().map(String::as_str).collect();
            let child_first = names.len() > 1 && within(&names[..1]).is_some_and(|m| m != module);
            if let (true, Some(target), Some(last)) = (child_first, within(&names), names.last()) {
                out.insert((*last).to_owned(), target);
            }
        }
    }
    out
}

/// The sets of two or more modules that each reach all the others (Tarjan's strongly
/// connected components), each sorted.
fn tangles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        out: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, v: &'g str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            for w in self.graph.get(v).into_iter().flatten() {
                if !self.graph.contains_key(w) {
                    continue;
                }
                if !self.index.contains_key(w.as_str()) {
                    self.visit(w);
                    let low = self.low[w.as_str()].min(self.low[v]);
                    self.low.insert(v, low);
                } else if self.stack.contains(&w.as_str()) {
                    let low = self.index[w.as_str()].min(self.low[v]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let at = self
                    .stack
                    .iter()
                    .rposition(|&m| m == v)
                    .expect("on the stack");
                let mut tangle: Vec<String> = self.stack.drain(at..).map(str::to_owned).collect();
                if tangle.len() > 1 {
                    tangle.sort();
                    self.out.push(tangle);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.out.sort();
    walk.out
}

/// A shortest cycle through the first module of `tangle`, that module again at its end.
fn shortest_cycle(graph: &BTreeMap<String, BTreeSet<String>>, tangle: &[String]) -> Vec<String> {
    let start = &tangle[0];
    let mut came_from: BTreeMap<&String, &String> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in &graph[v] {
            if w == start {
                let mut cycle = vec![v.clone()];
                let mut at = v;
                while at != start {
                    at = came_from[at];
                    cycle.push(at.clone());
                }
                cycle.reverse();
                cycle.push(start.clone());
                return cycle;
            }
            if tangle.contains(w) && !came_from.contains_key(w) {
                came_from.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    unreachable!("a module of a tangle reaches itself")
}
