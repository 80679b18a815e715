//! The generated v1 contract (see `proto/credithub/v1`) and its descriptor set, which
//! server reflection serves.

/// Messages, clients and servers of package `credithub.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("credithub.v1");
}

/// The encoded `FileDescriptorSet` of the contract, with source comments.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/credithub_descriptor.bin"));
