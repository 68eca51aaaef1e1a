//! The daemon's modules form no import cycle (issue 14): data flows one way, so a reader can tell
//! from a module's name which others it may use. Every `.rs` file under `node/src` is a module;
//! an edge is a `crate::…` or `super::…` path (in `use` or inline) outside its `#[cfg(test)]`
//! part, resolved to the longest module prefix. A parent declaring its children (`mod x;`, or a
//! relative `use x::…`) is not an edge. The test prints the graph and fails on any strongly
//! connected component of more than one module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn modules(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if path.is_dir() {
            modules(&path, &[prefix, &[name]].concat(), out);
        } else if let Some(stem) = name.strip_suffix(".rs") {
            let segs: Vec<String> = match stem {
                "lib" | "main" if prefix.is_empty() => continue,
                "mod" => prefix.to_vec(),
                _ => [prefix, &[stem.to_owned()]].concat(),
            };
            out.insert(segs.join("::"), std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// The source without comments and without the `#[cfg(test)]` part (tests may reach anywhere).
fn production_code(src: &str) -> String {
    let src = src.split("#[cfg(test)]").next().unwrap();
    src.lines().map(|l| l.split("//").next().unwrap()).collect::<Vec<_>>().join("\n")
}

/// Every path that follows `root::` in `code`, with `{a, b::c}` groups expanded.
fn paths_after(code: &str, root: &str) -> Vec<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(root) {
        let before = rest[..i].chars().last();
        rest = &rest[i + root.len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let path: String = rest.chars().take_while(|c| ident(*c)).collect();
        let after = &rest[path.len()..];
        if (path.is_empty() || path.ends_with("::")) && after.starts_with('{') {
            let group = &after[1..after.find('}').unwrap_or(after.len() - 1)];
            for item in group.split(',') {
                let item = item.split(" as ").next().unwrap().trim();
                if !item.is_empty() && !item.contains('{') {
                    out.push(format!("{path}{item}"));
                }
            }
        } else {
            out.push(path);
        }
    }
    out
}

fn resolve(mods: &BTreeMap<String, String>, path: &str) -> Option<String> {
    let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty() && *s != "self").collect();
    (1..=segs.len()).rev().map(|n| segs[..n].join("::")).find(|m| mods.contains_key(m))
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut mods = BTreeMap::new();
    modules(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &[], &mut mods);
    let mut g: BTreeMap<String, BTreeSet<String>> = mods.keys().map(|m| (m.clone(), BTreeSet::new())).collect();
    for (m, src) in &mods {
        let code = production_code(src);
        let parent: Vec<&str> = m.split("::").collect();
        let parent = parent[..parent.len().saturating_sub(1)].join("::");
        let mut targets: Vec<String> = paths_after(&code, "crate::");
        targets.extend(paths_after(&code, "super::").into_iter().map(|p| if parent.is_empty() { p } else { format!("{parent}::{p}") }));
        for t in targets {
            if let Some(t) = resolve(&mods, &t)
                && t != *m
                && !t.starts_with(&format!("{m}::")) {
                g.get_mut(m).unwrap().insert(t);
            }
        }
    }
    g
}

/// Tarjan's strongly connected components of more than one node.
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        for w in &t.g[v] {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                t.low.entry(v).and_modify(|l| *l = (*l).min(lw));
            } else if t.on.contains(w) {
                let iw = t.index[w];
                t.low.entry(v).and_modify(|l| *l = (*l).min(iw));
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(w);
                comp.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T { g, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on: BTreeSet::new(), out: Vec::new() };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn the_daemons_modules_import_each_other_without_cycles() {
    let g = graph();
    for (m, deps) in &g {
        eprintln!("{m} -> {}", deps.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    assert!(g.len() > 10 && g.values().any(|d| !d.is_empty()), "the scan found no modules or no edges: {g:?}");
    assert_eq!(cycles(&g), Vec::<Vec<String>>::new(), "import cycles among node/src modules");
}

/// The checker itself finds a cycle when there is one, and follows groups and `super::`.
#[test]
fn the_checker_sees_groups_super_and_cycles() {
    let code = "use crate::{a::b, c};\nfn f() { super::d::x(); crate::e::F; }\n";
    assert_eq!(paths_after(code, "crate::"), ["a::b", "c", "e::F"]);
    assert_eq!(paths_after(code, "super::"), ["d::x"]);
    let edges = |pairs: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in pairs {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    assert_eq!(cycles(&edges(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])), vec![vec!["a".to_owned(), "b".into(), "c".into()]]);
    assert!(cycles(&edges(&[("a", "b"), ("b", "c"), ("a", "c")])).is_empty());
}
