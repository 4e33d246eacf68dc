//! Attribute paths: where in a configuration a diagnostic or a change points.
//!
//! Terraform renders a diagnostic that carries a path with the file and line of
//! the offending attribute, which is what makes an error message actionable.

use std::fmt;

/// One step into a value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    Attr(String),
    Key(String),
    Index(i64),
}

/// A path from the root object of a resource, data source or provider config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AttrPath(pub Vec<Step>);

impl AttrPath {
    pub fn root() -> Self {
        Self(Vec::new())
    }
    /// `AttrPath::attr("name")`: the path of a top-level attribute.
    pub fn attr_root(name: &str) -> Self {
        Self(vec![Step::Attr(name.to_string())])
    }
    pub fn attr(&self, name: &str) -> Self {
        self.with(Step::Attr(name.to_string()))
    }
    pub fn key(&self, key: &str) -> Self {
        self.with(Step::Key(key.to_string()))
    }
    pub fn index(&self, i: usize) -> Self {
        self.with(Step::Index(i as i64))
    }
    fn with(&self, s: Step) -> Self {
        let mut v = self.0.clone();
        v.push(s);
        Self(v)
    }
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Step::Attr(a) if i == 0 => write!(f, "{a}")?,
                Step::Attr(a) => write!(f, ".{a}")?,
                Step::Key(k) => write!(f, "[{k:?}]")?,
                Step::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_hcl_references() {
        let p = AttrPath::attr_root("disks").index(2).attr("size").key("a");
        assert_eq!(p.to_string(), "disks[2].size[\"a\"]");
    }
}
