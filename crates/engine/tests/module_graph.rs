//! Keeps the engine's modules (and those of the crates under it) free of import circles: no file uses a file that uses it back,
//! directly or through others, and none imports through the crate root (`crate::Foo`) instead
//! of from the module that defines `Foo`. A circle is what turns a change in one place into
//! changes in ten; this test names the circle so it is undone where it starts.
//!
//! A module's edges are the paths it names — `crate::a::b`, `super::x`, `crate::{a, b::C}` and a
//! parent's `child::` paths — outside comments and its `#[cfg(test)] mod tests`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
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

/// `sip/mod.rs` → `sip`, `sip/calls.rs` → `sip::calls`, `lib.rs` → `` (the root).
fn module_name(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

/// The source without comments and without its unit-test module.
fn code_of(source: &str) -> String {
    let source = match source.find("#[cfg(test)]\nmod tests") {
        Some(end) => &source[..end],
        None => source,
    };
    source
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The `::`-separated lower-case segments at the start of `text` (a module path).
fn path_at(text: &str) -> Vec<String> {
    let mut segments = Vec::new();
    let mut rest = text;
    loop {
        let end = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        let segment = &rest[..end];
        if segment.is_empty() || !segment.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        {
            break;
        }
        segments.push(segment.to_owned());
        match rest[end..].strip_prefix("::") {
            Some(next) => rest = next,
            None => break,
        }
    }
    segments
}

/// Every path that follows `keyword::` in `code`, brace groups spread out one level.
fn paths_after(code: &str, keyword: &str) -> Vec<Vec<String>> {
    let needle = format!("{keyword}::");
    let mut paths = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find(&needle) {
        let start = from + at;
        from = start + needle.len();
        if code[..start].chars().next_back().is_some_and(is_ident) {
            continue;
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let item = item.trim();
                let path = path_at(item);
                // `crate::{Foo}` names an item of the root itself.
                paths.push(if item.is_empty() { continue } else { path });
            }
        } else {
            paths.push(path_at(rest));
        }
    }
    paths
}

/// The longest module that a path names (the root when it names none).
fn resolve(modules: &BTreeSet<String>, path: &[String]) -> String {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|candidate| modules.contains(candidate))
        .unwrap_or_default()
}

/// The engine's own sources.
fn engine_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn graph_of(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let sources: BTreeMap<String, String> = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            (module_name(src, f), code_of(&text))
        })
        .collect();
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    let mut graph = Graph::new();
    for (module, code) in &sources {
        let edges = graph.entry(module.clone()).or_default();
        if module.is_empty() {
            continue;
        }
        let parent: Vec<String> = {
            let mut p: Vec<String> = module.split("::").map(str::to_owned).collect();
            p.pop();
            p
        };
        for path in paths_after(code, "crate") {
            edges.insert(resolve(&modules, &path));
        }
        for path in paths_after(code, "super") {
            let full: Vec<String> = parent.iter().cloned().chain(path).collect();
            edges.insert(resolve(&modules, &full));
        }
        // A parent that reaches into a child module by name (`file::run`).
        for child in modules.iter().filter_map(|m| {
            let rest = m.strip_prefix(module.as_str())?.strip_prefix("::")?;
            (!rest.contains("::")).then_some(rest)
        }) {
            let uses_child =
                paths_after(code, child).len() + code.matches(&format!("use {child}")).count() > 0;
            if uses_child {
                edges.insert(format!("{module}::{child}"));
            }
        }
        edges.remove(module);
    }
    graph
}

/// Strongly connected components of more than one module (Tarjan).
fn circles(graph: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.found
}

fn describe(graph: &Graph, modules: &[String]) -> String {
    modules
        .iter()
        .map(|m| {
            let inside: Vec<&str> = graph[m]
                .iter()
                .filter(|t| modules.contains(t))
                .map(String::as_str)
                .collect();
            format!("  {m} uses {}", inside.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let graph = graph_of(&engine_src());
    assert!(graph.len() > 10, "the engine's sources were not found");
    let found = circles(&graph);
    let report: Vec<String> = found.iter().map(|c| describe(&graph, c)).collect();
    assert!(
        found.is_empty(),
        "import circles among the engine's modules:\n{}",
        report.join("\n\n")
    );
}

#[test]
fn no_module_imports_through_the_crate_root() {
    let graph = graph_of(&engine_src());
    let through_root: Vec<&String> = graph
        .iter()
        .filter(|(module, edges)| !module.is_empty() && edges.contains(""))
        .map(|(module, _)| module)
        .collect();
    assert!(
        through_root.is_empty(),
        "these modules import `crate::Item` instead of from the module that defines it: \
         {through_root:?}"
    );
}

/// The graph between a crate's top-level modules: a folder module (`invite/`, a dispatching
/// client and its parts) counts as one.
fn top_level(graph: &Graph) -> Graph {
    let top = |m: &str| m.split("::").next().unwrap_or_default().to_owned();
    let mut collapsed = Graph::new();
    for (module, edges) in graph {
        let from = top(module);
        let targets = collapsed.entry(from.clone()).or_default();
        targets.extend(edges.iter().map(|e| top(e)).filter(|e| *e != from));
    }
    collapsed
}

/// The crates the engine is layered on keep the same promise between their top-level modules:
/// a protocol core or the media layer is read against its RFC one module at a time.
#[test]
fn the_crates_under_the_engine_have_no_import_circles() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut report = Vec::new();
    for name in ["sdp", "sip", "msrp", "xmpp", "media", "store"] {
        let graph = top_level(&graph_of(&crates.join(name).join("src")));
        assert!(graph.len() > 1, "crates/{name}/src was not found");
        for circle in circles(&graph) {
            report.push(format!("crates/{name}: {}", describe(&graph, &circle)));
        }
    }
    assert!(
        report.is_empty(),
        "import circles:\n{}",
        report.join("\n\n")
    );
}

#[test]
fn the_checker_sees_a_circle() {
    let mut graph = Graph::new();
    graph.insert("a".into(), ["b".to_owned()].into());
    graph.insert("b".into(), ["c".to_owned()].into());
    graph.insert("c".into(), ["a".to_owned()].into());
    graph.insert("d".into(), ["a".to_owned()].into());
    assert_eq!(circles(&graph), vec![vec!["a", "b", "c"]]);
    // Folder modules collapse: a child of `x` using `y` and `y` using another child of `x`.
    let mut nested = Graph::new();
    nested.insert("x::one".into(), ["y".to_owned()].into());
    nested.insert("y".into(), ["x::two".to_owned()].into());
    nested.insert("x::two".into(), BTreeSet::new());
    assert!(circles(&nested).is_empty());
    assert_eq!(circles(&top_level(&nested)), vec![vec!["x", "y"]]);
    let modules: BTreeSet<String> = ["sip".to_owned(), "sip::calls".to_owned()].into();
    let code = "use crate::{sip::calls::Calls, ground::Id};\nlet x = super::calls::y;";
    let paths = paths_after(code, "crate");
    assert_eq!(resolve(&modules, &paths[0]), "sip::calls");
    assert_eq!(resolve(&modules, &paths[1]), "");
}
