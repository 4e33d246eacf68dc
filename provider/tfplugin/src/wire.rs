//! The one adapter between generated protobuf types and the framework's own
//! (schemas, values, paths, diagnostics). Nothing outside this crate sees a
//! protobuf type.

use crate::diag::{Diagnostic, Diagnostics, Severity};
use crate::json;
use crate::msgpack;
use crate::path::{AttrPath, Step};
use crate::proto::tfplugin6 as pb;
use crate::schema::{AttrType, Attribute, Block, BlockNesting, Nesting, Schema};
use crate::types::Type;
use crate::value::TfValue;

pub fn diagnostics(d: Diagnostics) -> Vec<pb::Diagnostic> {
    d.0.into_iter().map(diagnostic).collect()
}

pub fn diagnostic(d: Diagnostic) -> pb::Diagnostic {
    pb::Diagnostic {
        severity: match d.severity {
            Severity::Error => pb::diagnostic::Severity::Error as i32,
            Severity::Warning => pb::diagnostic::Severity::Warning as i32,
        },
        summary: d.summary,
        detail: d.detail,
        attribute: d.path.filter(|p| !p.is_root()).map(path),
    }
}

pub fn path(p: AttrPath) -> pb::AttributePath {
    use pb::attribute_path::{Step as PStep, step::Selector};
    pb::AttributePath {
        steps: p
            .0
            .into_iter()
            .map(|s| PStep {
                selector: Some(match s {
                    Step::Attr(a) => Selector::AttributeName(a),
                    Step::Key(k) => Selector::ElementKeyString(k),
                    Step::Index(i) => Selector::ElementKeyInt(i),
                }),
            })
            .collect(),
    }
}

/// Decodes a `DynamicValue` (msgpack, or JSON when that is what was sent).
pub fn decode(dv: Option<&pb::DynamicValue>, ty: &Type) -> Result<TfValue, Diagnostic> {
    let Some(dv) = dv else { return Ok(TfValue::Null) };
    let r = if !dv.msgpack.is_empty() {
        msgpack::decode(&dv.msgpack, ty)
    } else if !dv.json.is_empty() {
        json::decode(&dv.json, ty)
    } else {
        Ok(TfValue::Null)
    };
    r.map_err(|e| {
        Diagnostic::error(
            "Value from Terraform does not match the provider schema",
            format!("{e}. Is this provider binary the one Terraform fetched the schema from? Run terraform init."),
        )
    })
}

pub fn encode(v: &TfValue, ty: &Type) -> Result<pb::DynamicValue, Diagnostic> {
    let msgpack = msgpack::encode(v, ty).map_err(|e| {
        Diagnostic::error(
            "Provider produced a value that does not match its schema",
            format!("{e}. This is a provider bug."),
        )
    })?;
    Ok(pb::DynamicValue { msgpack, json: Vec::new() })
}

pub fn schema(s: &Schema) -> pb::Schema {
    pb::Schema { version: s.version, block: Some(block(&s.block)) }
}

fn block(b: &Block) -> pb::schema::Block {
    pb::schema::Block {
        version: 0,
        attributes: b.attributes.iter().map(attribute).collect(),
        block_types: b
            .blocks
            .iter()
            .map(|nb| pb::schema::NestedBlock {
                type_name: nb.type_name.clone(),
                block: Some(block(&nb.block)),
                nesting: match nb.nesting {
                    BlockNesting::Single => pb::schema::nested_block::NestingMode::Single,
                    BlockNesting::Group => pb::schema::nested_block::NestingMode::Group,
                    BlockNesting::List => pb::schema::nested_block::NestingMode::List,
                    BlockNesting::Set => pb::schema::nested_block::NestingMode::Set,
                    BlockNesting::Map => pb::schema::nested_block::NestingMode::Map,
                } as i32,
                min_items: nb.min_items,
                max_items: nb.max_items,
            })
            .collect(),
        description: b.description.clone(),
        description_kind: pb::StringKind::Markdown as i32,
        deprecated: b.deprecation.is_some(),
    }
}

fn attribute(a: &Attribute) -> pb::schema::Attribute {
    let (ty, nested) = match &a.ty {
        AttrType::Plain(t) => (t.to_json_bytes(), None),
        AttrType::Nested(n, attrs) => (
            Vec::new(),
            Some(pb::schema::Object {
                attributes: attrs.iter().map(attribute).collect(),
                nesting: match n {
                    Nesting::Single => pb::schema::object::NestingMode::Single,
                    Nesting::List => pb::schema::object::NestingMode::List,
                    Nesting::Set => pb::schema::object::NestingMode::Set,
                    Nesting::Map => pb::schema::object::NestingMode::Map,
                } as i32,
            }),
        ),
    };
    pb::schema::Attribute {
        name: a.name.clone(),
        r#type: ty,
        nested_type: nested,
        description: a.description.clone(),
        required: a.required,
        optional: a.optional,
        computed: a.computed,
        sensitive: a.sensitive,
        description_kind: pb::StringKind::Markdown as i32,
        deprecated: a.deprecation.is_some(),
        write_only: a.write_only,
    }
}

pub fn timestamp(t: std::time::SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}
