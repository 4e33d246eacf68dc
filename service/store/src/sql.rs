//! A small statement builder for the few queries whose shape depends on
//! filters: it numbers `$N` placeholders as values are bound, so list queries
//! stay injection-free on both backends.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, Arguments};
use tundra_api::Page;

use crate::Visibility;

#[derive(Debug)]
enum Arg {
    Text(String),
    Int(i64),
}

#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub text: String,
    args: Vec<Arg>,
}

impl Sql {
    pub fn new(text: &str) -> Sql {
        Sql { text: text.to_string(), args: Vec::new() }
    }

    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Append a placeholder bound to `v`.
    pub fn bind(&mut self, v: impl Into<String>) -> &mut Self {
        self.args.push(Arg::Text(v.into()));
        self.text.push_str(&format!("${}", self.args.len()));
        self
    }

    pub fn bind_int(&mut self, v: i64) -> &mut Self {
        self.args.push(Arg::Int(v));
        self.text.push_str(&format!("${}", self.args.len()));
        self
    }

    pub fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        let mut args = AnyArguments::default();
        for a in &self.args {
            match a {
                Arg::Text(s) => args.add(s.clone()).expect("binding text cannot fail"),
                Arg::Int(v) => args.add(*v).expect("binding an integer cannot fail"),
            }
        }
        sqlx::query_with(&self.text, args)
    }

    /// Append the keyset-pagination tail: `AND id > after ORDER BY id LIMIT n+1`.
    pub fn page(&mut self, after: Option<&str>, limit: u32) -> &mut Self {
        if let Some(a) = after {
            self.push(" AND id > ").bind(a);
        }
        self.push(" ORDER BY id LIMIT ").bind_int(i64::from(limit) + 1)
    }

    /// Append a visibility filter on `project_id`.
    pub fn visible(&mut self, v: &Visibility, has_public: bool) -> &mut Self {
        use crate::Visibility::*;
        match v {
            All => self,
            // Only nouns that have public objects have any to show.
            PublicOnly if has_public => self.push(" AND project_id IS NULL"),
            PublicOnly => self.push(" AND 1 = 0"),
            Project(p) => self.push(" AND project_id = ").bind(p.to_string()),
            Projects(ps) => {
                self.push(" AND (");
                if has_public {
                    self.push("project_id IS NULL OR ");
                }
                self.push("project_id IN (''");
                for p in ps {
                    self.push(", ").bind(p.to_string());
                }
                self.push("))")
            }
        }
    }
}

/// Cut a fetched `limit + 1` rows down to a page and its `next` cursor.
pub(crate) fn paginate<T>(mut items: Vec<T>, limit: u32, id: impl Fn(&T) -> String) -> Page<T> {
    let next = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(id)
    } else {
        None
    };
    Page { items, next }
}
