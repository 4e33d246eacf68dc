//! Generated protobuf and gRPC code (from `proto/`), private to this crate.
#![allow(clippy::all, clippy::pedantic, unused_qualifications, missing_docs, dead_code)]

pub mod tfplugin6 {
    tonic::include_proto!("tfplugin6");
}

pub mod plugin {
    tonic::include_proto!("plugin");
}
