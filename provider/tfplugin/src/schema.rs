//! Schemas: what a provider, resource, data source or ephemeral resource
//! accepts and produces.
//!
//! Attributes are built with small chained calls:
//!
//! ```
//! use tfplugin::schema::{Attribute, Block, Schema};
//! use tfplugin::{modifiers, validators};
//! let s = Schema::new(
//!     Block::new("A thing.")
//!         .attr(Attribute::string("id").computed().modifier(modifiers::use_state_for_unknown()))
//!         .attr(Attribute::string("name").required().validator(validators::length(1, 64))),
//! );
//! assert!(s.check().is_ok());
//! ```
//!
//! The schema is also the source of truth for decoding (its object type), for
//! planning (computed, defaults, modifiers, write-only) and for the generated
//! documentation (descriptions, and what modifiers and validators say).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::modifiers::PlanModifier;
use crate::types::Type;
use crate::validators::Validator;
use crate::value::TfValue;

/// How nested attributes repeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nesting {
    Single,
    List,
    Set,
    Map,
}

/// How a nested block repeats. `Group` is a single block that is never null.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockNesting {
    Single,
    Group,
    List,
    Set,
    Map,
}

#[derive(Clone)]
pub enum AttrType {
    Plain(Type),
    Nested(Nesting, Vec<Attribute>),
}

#[derive(Clone)]
pub struct Attribute {
    pub name: String,
    pub ty: AttrType,
    pub required: bool,
    pub optional: bool,
    pub computed: bool,
    pub sensitive: bool,
    /// Accepted in configuration, never stored in plan or state.
    pub write_only: bool,
    pub deprecation: Option<String>,
    /// Markdown.
    pub description: String,
    /// Planned when the configuration leaves the attribute null.
    pub default: Option<TfValue>,
    pub modifiers: Vec<Arc<dyn PlanModifier>>,
    pub validators: Vec<Arc<dyn Validator>>,
}

impl std::fmt::Debug for Attribute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attribute").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Attribute {
    pub fn new(name: &str, ty: Type) -> Self {
        Self::with(name, AttrType::Plain(ty))
    }
    fn with(name: &str, ty: AttrType) -> Self {
        Self {
            name: name.to_string(),
            ty,
            required: false,
            optional: false,
            computed: false,
            sensitive: false,
            write_only: false,
            deprecation: None,
            description: String::new(),
            default: None,
            modifiers: Vec::new(),
            validators: Vec::new(),
        }
    }
    pub fn string(name: &str) -> Self {
        Self::new(name, Type::String)
    }
    pub fn number(name: &str) -> Self {
        Self::new(name, Type::Number)
    }
    pub fn bool(name: &str) -> Self {
        Self::new(name, Type::Bool)
    }
    pub fn list(name: &str, elem: Type) -> Self {
        Self::new(name, Type::list(elem))
    }
    pub fn set(name: &str, elem: Type) -> Self {
        Self::new(name, Type::set(elem))
    }
    pub fn map(name: &str, elem: Type) -> Self {
        Self::new(name, Type::map(elem))
    }
    /// An attribute whose value is an object (or objects) with its own schema.
    pub fn nested(name: &str, nesting: Nesting, attrs: Vec<Attribute>) -> Self {
        Self::with(name, AttrType::Nested(nesting, attrs))
    }
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
    pub fn computed(mut self) -> Self {
        self.computed = true;
        self
    }
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
    pub fn write_only(mut self) -> Self {
        self.write_only = true;
        self
    }
    pub fn deprecated(mut self, message: &str) -> Self {
        self.deprecation = Some(message.to_string());
        self
    }
    pub fn description(mut self, markdown: &str) -> Self {
        self.description = markdown.to_string();
        self
    }
    /// Value planned when the configuration leaves this optional+computed attribute unset.
    pub fn default(mut self, v: TfValue) -> Self {
        self.default = Some(v);
        self
    }
    pub fn modifier(mut self, m: Arc<dyn PlanModifier>) -> Self {
        self.modifiers.push(m);
        self
    }
    pub fn validator(mut self, v: Arc<dyn Validator>) -> Self {
        self.validators.push(v);
        self
    }

    /// The attribute's value type.
    pub fn value_type(&self) -> Type {
        match &self.ty {
            AttrType::Plain(t) => t.clone(),
            AttrType::Nested(n, attrs) => {
                let obj = Type::Object(attrs.iter().map(|a| (a.name.clone(), a.value_type())).collect());
                match n {
                    Nesting::Single => obj,
                    Nesting::List => Type::list(obj),
                    Nesting::Set => Type::set(obj),
                    Nesting::Map => Type::map(obj),
                }
            }
        }
    }

    /// Read-only: computed and never set in configuration.
    pub fn is_read_only(&self) -> bool {
        self.computed && !self.optional && !self.required
    }
}

#[derive(Clone, Debug)]
pub struct NestedBlock {
    pub type_name: String,
    pub block: Block,
    pub nesting: BlockNesting,
    pub min_items: i64,
    pub max_items: i64,
}

impl NestedBlock {
    pub fn new(type_name: &str, nesting: BlockNesting, block: Block) -> Self {
        Self { type_name: type_name.to_string(), block, nesting, min_items: 0, max_items: 0 }
    }
    pub fn items(mut self, min: i64, max: i64) -> Self {
        self.min_items = min;
        self.max_items = max;
        self
    }
    pub fn value_type(&self) -> Type {
        let obj = self.block.object_type();
        match self.nesting {
            BlockNesting::Single | BlockNesting::Group => obj,
            BlockNesting::List => Type::list(obj),
            BlockNesting::Set => Type::set(obj),
            BlockNesting::Map => Type::map(obj),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Block {
    pub attributes: Vec<Attribute>,
    pub blocks: Vec<NestedBlock>,
    /// Markdown.
    pub description: String,
    pub deprecation: Option<String>,
}

impl Block {
    pub fn new(description: &str) -> Self {
        Self { description: description.to_string(), ..Self::default() }
    }
    pub fn attr(mut self, a: Attribute) -> Self {
        self.attributes.push(a);
        self
    }
    pub fn block(mut self, b: NestedBlock) -> Self {
        self.blocks.push(b);
        self
    }
    pub fn deprecated(mut self, message: &str) -> Self {
        self.deprecation = Some(message.to_string());
        self
    }
    pub fn object_type(&self) -> Type {
        let mut m = BTreeMap::new();
        for a in &self.attributes {
            m.insert(a.name.clone(), a.value_type());
        }
        for b in &self.blocks {
            m.insert(b.type_name.clone(), b.value_type());
        }
        Type::Object(m)
    }
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }
}

#[derive(Clone, Debug)]
pub struct Schema {
    pub version: i64,
    pub block: Block,
}

impl Schema {
    pub fn new(block: Block) -> Self {
        Self { version: 0, block }
    }
    /// Bump when the stored state's shape changes; pair it with a state upgrader.
    pub fn version(mut self, v: i64) -> Self {
        self.version = v;
        self
    }
    pub fn object_type(&self) -> Type {
        self.block.object_type()
    }

    /// Checks the rules Terraform enforces on schemas, so a mistake fails in
    /// a unit test rather than in front of a user.
    pub fn check(&self) -> Result<(), String> {
        check_block(&self.block, "")
    }
}

fn check_block(b: &Block, prefix: &str) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for a in &b.attributes {
        let name = format!("{prefix}{}", a.name);
        if !seen.insert(a.name.clone()) {
            return Err(format!("{name}: declared twice"));
        }
        check_attr(a, &name)?;
    }
    for nb in &b.blocks {
        let name = format!("{prefix}{}", nb.type_name);
        if !seen.insert(nb.type_name.clone()) {
            return Err(format!("{name}: declared twice"));
        }
        check_block(&nb.block, &format!("{name}."))?;
    }
    Ok(())
}

fn check_attr(a: &Attribute, name: &str) -> Result<(), String> {
    if a.name.is_empty() || !a.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err(format!("{name}: attribute names are lowercase letters, digits and _"));
    }
    match (a.required, a.optional, a.computed) {
        (true, false, false) | (false, true, _) | (false, false, true) => {}
        _ => {
            return Err(format!(
                "{name}: must be exactly one of required, optional, computed (optional may be computed)"
            ));
        }
    }
    if a.write_only && a.computed {
        return Err(format!("{name}: a write-only attribute cannot be computed"));
    }
    if a.default.is_some() && !(a.optional && a.computed) {
        return Err(format!("{name}: a default needs optional + computed"));
    }
    if let AttrType::Nested(_, attrs) = &a.ty {
        for n in attrs {
            check_attr(n, &format!("{name}.{}", n.name))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_type_includes_nested_attributes_and_blocks() {
        let b = Block::new("")
            .attr(Attribute::string("a").required())
            .attr(Attribute::nested("n", Nesting::List, vec![Attribute::number("x").optional()]).optional())
            .block(NestedBlock::new("b", BlockNesting::Set, Block::new("").attr(Attribute::bool("y").optional())));
        assert_eq!(
            b.object_type(),
            Type::object([
                ("a", Type::String),
                ("n", Type::list(Type::object([("x", Type::Number)]))),
                ("b", Type::set(Type::object([("y", Type::Bool)]))),
            ])
        );
    }

    #[test]
    fn check_rejects_contradictions() {
        let bad = |a: Attribute| Schema::new(Block::new("").attr(a)).check().unwrap_err();
        assert!(bad(Attribute::string("a")).contains("exactly one"));
        assert!(bad(Attribute::string("a").required().computed()).contains("exactly one"));
        assert!(bad(Attribute::string("a").optional().computed().write_only()).contains("write-only"));
        assert!(bad(Attribute::string("a").optional().default(TfValue::string("x"))).contains("default"));
        assert!(bad(Attribute::string("A").optional()).contains("lowercase"));
    }
}
