//! The plan of an archive: which container each entry goes into, and the
//! order of the writer's steps.

use std::collections::HashMap;

/// One step of writing a tree with an [`ArchiveWriter`](super::ArchiveWriter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Open the container of directory number `i` of the input.
    Open(usize),
    /// Add entry number `i` (not a directory) to the container open last.
    Add(usize),
    /// Close the container open last.
    Close,
}

struct DirPlan {
    entry: usize,
    children: Vec<usize>,
    subdirs: Vec<usize>,
}

/// Orders a tree for an [`ArchiveWriter`](super::ArchiveWriter): `items`
/// are `(path, is_dir)` pairs, the root (empty path) first and every
/// directory before what it holds; siblings keep their order. Depth first,
/// a directory's container opens, its other entries follow, then its
/// subdirectories' containers. Entries whose parent is not a directory of
/// the input are left out.
pub fn plan<'p>(items: impl IntoIterator<Item = (&'p [u8], bool)>) -> Vec<Step> {
    let mut dirs: Vec<DirPlan> = Vec::new();
    let mut dir_of: HashMap<&'p [u8], usize> = HashMap::new();
    for (i, (path, is_dir)) in items.into_iter().enumerate() {
        if i == 0 {
            if !is_dir || !path.is_empty() {
                return Vec::new();
            }
        } else {
            let Some(&p) = dir_of.get(manifest::parent_of(path)) else { continue };
            if is_dir {
                let d = dirs.len();
                dirs[p].subdirs.push(d);
            } else {
                dirs[p].children.push(i);
            }
        }
        if is_dir {
            dir_of.insert(path, dirs.len());
            dirs.push(DirPlan { entry: i, children: Vec::new(), subdirs: Vec::new() });
        }
    }
    if dirs.is_empty() {
        return Vec::new();
    }
    let mut steps = Vec::new();
    let open = |steps: &mut Vec<Step>, d: &DirPlan| {
        steps.push(Step::Open(d.entry));
        steps.extend(d.children.iter().map(|&c| Step::Add(c)));
    };
    open(&mut steps, &dirs[0]);
    let mut stack: Vec<(usize, usize)> = vec![(0, 0)];
    while let Some((d, next)) = stack.pop() {
        if let Some(&s) = dirs[d].subdirs.get(next) {
            stack.push((d, next + 1));
            open(&mut steps, &dirs[s]);
            stack.push((s, 0));
        } else {
            steps.push(Step::Close);
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(items: &[(&str, bool)]) -> Vec<Step> {
        plan(items.iter().map(|(s, d)| (s.as_bytes(), *d)))
    }

    #[test]
    fn files_before_subdirectories_depth_first() {
        use Step::*;
        let steps =
            p(&[("", true), ("a", true), ("a/x", false), ("b", false), ("a/s", true), ("a/s/y", false), ("c", true)]);
        assert_eq!(steps, vec![Open(0), Add(3), Open(1), Add(2), Open(4), Add(5), Close, Close, Open(6), Close, Close]);
    }

    #[test]
    fn orphans_and_bad_roots() {
        use Step::*;
        assert_eq!(p(&[("", true), ("gone/x", false), ("y", false)]), vec![Open(0), Add(2), Close]);
        assert!(p(&[("a", true)]).is_empty());
        assert!(p(&[("", false)]).is_empty());
        assert!(p(&[]).is_empty());
    }
}
