use globset::{Glob, GlobBuilder, GlobMatcher};

use crate::{Error, Result};

/// Rules as given by the user, before they are compiled with [`Rules::build`].
#[derive(Debug, Clone, Default)]
pub struct Rules {
    names: Vec<Vec<u8>>,
    globs: Vec<(String, bool)>,
}

impl Rules {
    /// Skips every file or directory with exactly this name, at any depth
    /// (`--exclude NAME`).
    pub fn exclude_name(&mut self, name: impl AsRef<[u8]>) -> &mut Self {
        self.names.push(name.as_ref().to_vec());
        self
    }

    /// Skips paths that match `pattern` (`--exclude-glob`).
    pub fn exclude_glob(&mut self, pattern: impl Into<String>) -> &mut Self {
        self.globs.push((pattern.into(), false));
        self
    }

    /// Keeps paths that match `pattern` (`--include-glob`). Once any include
    /// glob is given, files that match no rule are left out.
    pub fn include_glob(&mut self, pattern: impl Into<String>) -> &mut Self {
        self.globs.push((pattern.into(), true));
        self
    }

    /// Compiles the globs.
    pub fn build(&self) -> Result<RuleSet> {
        let mut globs = Vec::with_capacity(self.globs.len());
        for (pattern, include) in &self.globs {
            globs.push(CompiledGlob::new(pattern, *include)?);
        }
        Ok(RuleSet { names: self.names.clone(), globs })
    }
}

#[derive(Debug, Clone)]
struct CompiledGlob {
    /// The pattern without a leading `/`; its length is its specificity.
    pattern: String,
    include: bool,
    /// Patterns without `/` match the last component, like .gitignore.
    basename_only: bool,
    matcher: GlobMatcher,
    /// For `dir/**`: also matches `dir` itself.
    dir_matcher: Option<GlobMatcher>,
}

impl CompiledGlob {
    fn new(raw: &str, include: bool) -> Result<CompiledGlob> {
        let pattern = raw.trim_start_matches('/').to_string();
        let compile = |p: &str| -> Result<GlobMatcher> {
            GlobBuilder::new(p)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map(|g: Glob| g.compile_matcher())
                .map_err(|source| Error::Glob { pattern: raw.to_string(), source })
        };
        let matcher = compile(&pattern)?;
        let dir_matcher = match pattern.strip_suffix("/**") {
            Some(dir) if !dir.is_empty() => Some(compile(dir)?),
            _ => None,
        };
        let basename_only = !pattern.contains('/');
        Ok(CompiledGlob { pattern, include, basename_only, matcher, dir_matcher })
    }

    fn matches(&self, rel: &[u8], name: &[u8], is_dir: bool) -> bool {
        let subject = if self.basename_only { name } else { rel };
        let subject = bytes_as_path(subject);
        self.matcher.is_match(subject) || (is_dir && self.dir_matcher.as_ref().is_some_and(|m| m.is_match(subject)))
    }
}

fn bytes_as_path(b: &[u8]) -> &std::path::Path {
    use std::os::unix::ffi::OsStrExt;
    std::path::Path::new(std::ffi::OsStr::from_bytes(b))
}

/// The decision about one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep it (and, for a directory, what is below it unless a rule says otherwise).
    Include,
    /// Leave it out (for a directory: do not descend).
    Exclude,
    /// Include globs exist and none matched yet: a file is left out, a
    /// directory is walked and kept only if something below it is kept.
    Undecided,
}

/// Compiled include/exclude rules.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    names: Vec<Vec<u8>>,
    globs: Vec<CompiledGlob>,
}

impl RuleSet {
    /// Whether there is no rule at all (everything is kept).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.globs.is_empty()
    }

    /// Whether any include glob was given.
    pub fn has_includes(&self) -> bool {
        self.globs.iter().any(|g| g.include)
    }

    /// The verdict for the root of the walk.
    pub fn root_verdict(&self) -> Verdict {
        if self.has_includes() {
            Verdict::Undecided
        } else {
            Verdict::Include
        }
    }

    /// Decides about one entry, given the verdict of its parent directory.
    ///
    /// `--exclude NAME` always wins. Among matching globs the longest
    /// pattern wins; on a tie, exclusion wins. When no glob matches, the
    /// entry inherits its parent's verdict. An excluded directory is still
    /// walked (as undecided) when an include glob names a path inside it.
    pub fn decide(&self, rel: &[u8], name: &[u8], is_dir: bool, parent: Verdict) -> Verdict {
        if self.names.iter().any(|n| n.as_slice() == name) {
            return Verdict::Exclude;
        }
        let mut best: Option<&CompiledGlob> = None;
        for g in &self.globs {
            if !g.matches(rel, name, is_dir) {
                continue;
            }
            best = match best {
                None => Some(g),
                Some(b) if g.pattern.len() > b.pattern.len() => Some(g),
                Some(b) if g.pattern.len() == b.pattern.len() && !g.include => Some(g),
                keep => keep,
            };
        }
        match best {
            Some(g) if g.include => Verdict::Include,
            Some(_) if is_dir && self.include_below(rel) => Verdict::Undecided,
            Some(_) => Verdict::Exclude,
            None => parent,
        }
    }

    /// Whether a path (relative, `/`-separated) is kept: every component
    /// is decided in turn, as the walk would. Undecided directories are
    /// kept, undecided files are not.
    pub fn keeps(&self, path: &[u8], is_dir: bool) -> bool {
        if path.is_empty() {
            return true;
        }
        let mut v = self.root_verdict();
        let n = path.iter().filter(|&&b| b == b'/').count() + 1;
        let mut end = 0;
        for (i, name) in path.split(|&b| b == b'/').enumerate() {
            end += name.len();
            let last = i + 1 == n;
            v = self.decide(&path[..end], name, !last || is_dir, v);
            end += 1;
            if v == Verdict::Exclude {
                return false;
            }
        }
        v == Verdict::Include || is_dir
    }

    fn include_below(&self, rel: &[u8]) -> bool {
        self.globs.iter().any(|g| {
            g.include
                && g.pattern.len() > rel.len()
                && g.pattern.as_bytes().starts_with(rel)
                && g.pattern.as_bytes()[rel.len()] == b'/'
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(rules: &Rules, path: &str, is_dir: bool) -> Verdict {
        let set = rules.build().expect("valid rules");
        let mut v = set.root_verdict();
        let parts: Vec<&str> = path.split('/').collect();
        for i in 0..parts.len() {
            let rel = parts[..=i].join("/");
            let last = i + 1 == parts.len();
            v = set.decide(rel.as_bytes(), parts[i].as_bytes(), !last || is_dir, v);
            if v == Verdict::Exclude {
                return v;
            }
        }
        v
    }

    #[test]
    fn longest_rule_wins() {
        let mut r = Rules::default();
        r.include_glob("photos/**").exclude_glob("photos/private/**");
        assert_eq!(decide(&r, "photos/a.jpg", false), Verdict::Include);
        assert_eq!(decide(&r, "photos/private", true), Verdict::Exclude);
        assert_eq!(decide(&r, "photos/private/b.jpg", false), Verdict::Exclude);
        assert_eq!(decide(&r, "music/c.mp3", false), Verdict::Undecided);
    }

    #[test]
    fn include_inside_excluded_directory() {
        let mut r = Rules::default();
        r.exclude_glob("cache/**").include_glob("cache/keep/**");
        assert_eq!(decide(&r, "cache/junk", false), Verdict::Exclude);
        assert_eq!(decide(&r, "cache/keep/x", false), Verdict::Include);
        // Once include globs exist, unmatched paths are left out.
        assert_eq!(decide(&r, "other/x", false), Verdict::Undecided);
    }

    #[test]
    fn basename_patterns_match_at_any_depth() {
        let mut r = Rules::default();
        r.exclude_glob("*.pyc");
        assert_eq!(decide(&r, "a/b/c.pyc", false), Verdict::Exclude);
        assert_eq!(decide(&r, "a/b/c.py", false), Verdict::Include);
    }

    #[test]
    fn excluded_name_at_any_depth() {
        let mut r = Rules::default();
        r.exclude_name("node_modules").include_glob("**");
        assert_eq!(decide(&r, "x/node_modules/y", false), Verdict::Exclude);
        assert_eq!(decide(&r, "x/y", false), Verdict::Include);
    }

    #[test]
    fn bad_glob_names_the_pattern() {
        let mut r = Rules::default();
        r.exclude_glob("a/[");
        let err = r.build().expect_err("invalid glob");
        assert!(err.to_string().contains("`a/[`"), "{err}");
    }
}
