//! DeepStream's metadata libraries (`libnvds_meta.so`, `libnvdsgst_meta.so`),
//! opened at run time so that dshost starts, and runs the CPU backend, on
//! machines without DeepStream. They need only glib and GStreamer (no GPU).

use std::ffi::{c_int, c_uint};
use std::path::{Path, PathBuf};

use libloading::Library;

use super::abi::NvDsBatchMeta;
use super::version::Fingerprint;

pub const META_LIBRARY: &str = "libnvds_meta.so";
pub const GST_META_LIBRARY: &str = "libnvdsgst_meta.so";

type CreateBatchMeta = unsafe extern "C" fn(c_uint) -> *mut NvDsBatchMeta;
type DestroyBatchMeta = unsafe extern "C" fn(*mut NvDsBatchMeta) -> c_int;
type GetBatchMeta = unsafe extern "C" fn(*mut gstreamer::ffi::GstBuffer) -> *mut NvDsBatchMeta;

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error(
        "cannot load DeepStream's metadata library ({tried}); install DeepStream, put its lib directory \
         (e.g. /opt/nvidia/deepstream/deepstream/lib) on LD_LIBRARY_PATH, or use `pipeline.backend: cpu`"
    )]
    NotFound { tried: String },
    #[error("{library} has no symbol `{symbol}` ({error}); it is not a DeepStream metadata library dshost can use")]
    MissingSymbol { library: String, symbol: &'static str, error: String },
}

/// The loaded libraries and the functions dshost calls.
pub struct MetaLibrary {
    /// Where the libraries came from (the name as given to the loader).
    pub location: String,
    create: CreateBatchMeta,
    destroy: DestroyBatchMeta,
    get: GetBatchMeta,
    // Kept loaded for as long as the function pointers above are used.
    _gst: Library,
    _core: Library,
}

fn symbol<T: Copy>(library: &Library, name: &'static str, file: &str) -> Result<T, LibraryError> {
    // SAFETY: the type is the C prototype from NVIDIA's headers (nvdsmeta.h,
    // gstnvdsmeta.h); the pointer is used only while `library` stays loaded.
    unsafe {
        library.get::<T>(name.as_bytes()).map(|s| *s).map_err(|e| LibraryError::MissingSymbol {
            library: file.to_string(),
            symbol: name,
            error: e.to_string(),
        })
    }
}

impl MetaLibrary {
    /// Loads the libraries: first by name (LD_LIBRARY_PATH and the linker's
    /// cache, where DeepStream's installer registers its lib directory),
    /// then from each directory in `dirs`.
    pub fn load(dirs: &[PathBuf]) -> Result<Self, LibraryError> {
        Self::load_with(true, dirs)
    }

    /// [`MetaLibrary::load`], optionally without the search by name.
    pub fn load_with(by_name: bool, dirs: &[PathBuf]) -> Result<Self, LibraryError> {
        let mut tried = Vec::new();
        let by_name = by_name.then_some(None);
        let candidates =
            by_name.into_iter().chain(dirs.iter().map(|d| Some(d.as_path()))).collect::<Vec<Option<&Path>>>();
        for dir in candidates {
            let (core_name, gst_name) = match dir {
                None => (META_LIBRARY.to_string(), GST_META_LIBRARY.to_string()),
                Some(dir) => {
                    (dir.join(META_LIBRARY).display().to_string(), dir.join(GST_META_LIBRARY).display().to_string())
                }
            };
            match Self::load_pair(&core_name, &gst_name) {
                Ok(library) => return Ok(library),
                Err(LoadFailure::Missing(error)) => tried.push(error),
                Err(LoadFailure::Unusable(error)) => return Err(error),
            }
        }
        Err(LibraryError::NotFound { tried: tried.join("; ") })
    }

    fn load_pair(core_name: &str, gst_name: &str) -> Result<Self, LoadFailure> {
        // SAFETY: loading runs the libraries' initialisers; NVIDIA's metadata
        // libraries have none beyond the C runtime's.
        let core = unsafe { Library::new(core_name) }.map_err(|e| LoadFailure::Missing(e.to_string()))?;
        let gst = unsafe { Library::new(gst_name) }.map_err(|e| LoadFailure::Missing(e.to_string()))?;
        let create = symbol(&core, "nvds_create_batch_meta", core_name).map_err(LoadFailure::Unusable)?;
        let destroy = symbol(&core, "nvds_destroy_batch_meta", core_name).map_err(LoadFailure::Unusable)?;
        let get = symbol(&gst, "gst_buffer_get_nvds_batch_meta", gst_name).map_err(LoadFailure::Unusable)?;
        Ok(MetaLibrary { location: gst_name.to_string(), create, destroy, get, _gst: gst, _core: core })
    }

    /// The ABI fingerprint of the loaded library: the element sizes of the
    /// frame and object pools of a batch meta it creates.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        // SAFETY: create/destroy are the library's own pair; the pools are
        // read through the NvDsBatchMeta/NvDsMetaPool prefix that has not
        // changed from 4.0 to 9.1 (docs/deepstream.md, "Struct layouts").
        unsafe {
            let batch = (self.create)(1);
            if batch.is_null() {
                return None;
            }
            let found = fingerprint_of(batch);
            (self.destroy)(batch);
            found
        }
    }

    /// The batch meta attached to `buffer`, or null.
    ///
    /// # Safety
    /// `buffer` must be a valid `GstBuffer` for the duration of the call.
    pub unsafe fn batch_meta(&self, buffer: *mut gstreamer::ffi::GstBuffer) -> *mut NvDsBatchMeta {
        (self.get)(buffer)
    }
}

enum LoadFailure {
    Missing(String),
    Unusable(LibraryError),
}

/// Pool element sizes of a batch meta.
///
/// # Safety
/// `batch` must point to a live `NvDsBatchMeta`.
pub unsafe fn fingerprint_of(batch: *const NvDsBatchMeta) -> Option<Fingerprint> {
    let batch = &*batch;
    if batch.obj_meta_pool.is_null() || batch.frame_meta_pool.is_null() {
        return None;
    }
    Some(Fingerprint {
        object_meta_size: (*batch.obj_meta_pool).element_size,
        frame_meta_size: (*batch.frame_meta_pool).element_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_library_names_what_was_tried_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let error = MetaLibrary::load_with(false, &[dir.path().to_path_buf()]).err().expect("nothing to load");
        let text = error.to_string();
        assert!(text.contains(&dir.path().join(META_LIBRARY).display().to_string()), "{text}");
        assert!(text.contains("pipeline.backend: cpu"), "{text}");
    }
}
