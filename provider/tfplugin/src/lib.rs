//! A Terraform provider framework speaking plugin protocol 6 (tfplugin6).
//!
//! This crate is the only code in Tundra that knows protobuf, gRPC and
//! msgpack. A provider implements [`Provider`] and returns its [`Resource`]s,
//! [`DataSource`]s and [`EphemeralResource`]s; [`plugin::main`] does the rest:
//! go-plugin handshake and AutoMTLS, decoding every request against the right
//! [`Schema`], planning (defaults, computed values, write-only attributes,
//! [`modifiers`], `timeouts`), [`validators`], state upgrades, and diagnostics
//! with attribute paths. [`docs`] renders Registry-style documentation from
//! the same schemas.
//!
//! Map of the crate:
//! - [`types`], [`value`]: Terraform types, `TfValue` (wire tree), `Value<T>` (typed view)
//! - [`msgpack`], [`json`]: the two value encodings (wire, stored state)
//! - [`schema`], [`modifiers`], [`validators`], [`timeouts`]: what providers declare
//! - [`resource`]: the traits providers implement
//! - `server` / `plan`: the tfplugin6 service and the schema-driven plan logic
//! - [`plugin`]: process start-up, TLS, go-plugin side services
//! - `wire`: the one adapter between protobuf types and the framework's

pub mod diag;
pub mod docs;
pub mod json;
pub mod modifiers;
pub mod msgpack;
pub mod path;
mod plan;
pub mod plugin;
mod proto;
pub mod resource;
pub mod schema;
mod server;
pub mod timeouts;
pub mod types;
pub mod validators;
pub mod value;
mod wire;

pub use diag::{Diagnostic, Diagnostics, Severity};
pub use path::AttrPath;
pub use resource::{
    ConfigureInfo, Ctx, DataSource, EphemeralResource, Failed, Opened, PlanChange, Provider, Renewed, Resource,
    StateUpgrader, data_source, ephemeral, resource,
};
pub use schema::{Attribute, Block, BlockNesting, NestedBlock, Nesting, Schema};
pub use timeouts::Timeouts;
pub use types::Type;
pub use value::{FromTf, IntoTf, Number, TfValue, Value};
