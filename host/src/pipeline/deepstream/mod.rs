//! The DeepStream backend and its version shim.
//!
//! `version` detects the installed release and confirms the metadata
//! layout with the ABI fingerprint of the loaded library; `profile` holds
//! per-release element and property choices as data; `builder` turns
//! config + profile into the batched pipeline; `library` opens NVIDIA's
//! metadata libraries at run time; `abi` and `reader` walk `NvDsBatchMeta`
//! into compact frames; `probe` routes them to the per-source queues;
//! `select` decides the backend; `batched` runs the pipeline. See
//! `docs/deepstream.md`.

pub mod abi;
pub mod batched;
pub mod builder;
pub mod library;
pub mod probe;
pub mod profile;
pub mod reader;
pub mod select;
pub mod version;

pub use library::{LibraryError, MetaLibrary};
pub use profile::Profile;
pub use reader::{BatchReader, FrameInfo};
pub use version::{Detection, DetectionInputs, DsVersion, Fingerprint, MetaLayout};
