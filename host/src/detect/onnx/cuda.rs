//! The few CUDA runtime calls a CUDA graph session makes itself: copying a
//! batch into the bound device input and the bound output back. They come
//! from the runtime library ONNX Runtime's CUDA provider has already loaded
//! (`libcudart`), looked up at run time, so a CPU-only build links nothing.
//!
//! Copies run on a stream of the session's own, created non-blocking. Not
//! `cudaMemcpy`: that runs on the legacy default stream, which waits for all
//! earlier work of every blocking stream of the process and makes their later
//! work wait for it. In dshost those are the GPU decoders and
//! `nvvideoconvert` of every source, so each worker's copies were barriers
//! across all decoding (bare ONNX Runtime, which decodes nothing, does not
//! pay for it). Not `ort`'s `Tensor::copy_into` either: it runs an identity
//! model whose sessions sit behind one process-wide lock, and on the H200 its
//! pinned-to-device copy failed outright (`GPUDataTransfer::CopyTensorAsync:
//! dst_data != src_data`).

use std::ffi::c_void;

type CudaStream = *mut c_void;
type Memcpy = unsafe extern "C" fn(*mut c_void, *const c_void, usize, i32) -> i32;
type MemcpyAsync = unsafe extern "C" fn(*mut c_void, *const c_void, usize, i32, CudaStream) -> i32;
type StreamCreateWithFlags = unsafe extern "C" fn(*mut CudaStream, u32) -> i32;
type StreamCall = unsafe extern "C" fn(CudaStream) -> i32;
type SetDevice = unsafe extern "C" fn(i32) -> i32;

/// cudaMemcpyDefault: the direction follows from the pointers (UVA).
const MEMCPY_DEFAULT: i32 = 4;
/// cudaStreamNonBlocking: no implicit ordering with the legacy default stream.
const STREAM_NON_BLOCKING: u32 = 1;

/// How a graph session copies (`DSHOST_CUDA_COPY`, for A/B benchmarks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CopyMode {
    /// `cudaMemcpyAsync` on a non-blocking stream of the session's own, then
    /// a wait for that stream alone (the default).
    Stream,
    /// Synchronous `cudaMemcpy` on the legacy default stream (before 2026-12-07).
    Legacy,
}

impl CopyMode {
    /// `DSHOST_CUDA_COPY`: unset or `stream`, or `legacy`.
    pub(crate) fn parse(value: Option<&str>) -> Result<CopyMode, String> {
        match value.map(str::trim) {
            None | Some("") | Some("stream") => Ok(CopyMode::Stream),
            Some("legacy") => Ok(CopyMode::Legacy),
            Some(other) => Err(format!("DSHOST_CUDA_COPY={other:?} is not `stream` or `legacy`")),
        }
    }

    /// The process's mode, read once; a bad value is said once and the
    /// default kept.
    pub(crate) fn current() -> CopyMode {
        static MODE: std::sync::OnceLock<CopyMode> = std::sync::OnceLock::new();
        *MODE.get_or_init(|| {
            let value = std::env::var("DSHOST_CUDA_COPY").ok();
            CopyMode::parse(value.as_deref()).unwrap_or_else(|reason| {
                tracing::warn!(%reason, "copying on a stream of each session's own");
                CopyMode::Stream
            })
        })
    }
}

pub(crate) struct CudaRuntime {
    memcpy: Memcpy,
    memcpy_async: MemcpyAsync,
    stream_create: StreamCreateWithFlags,
    stream_synchronize: StreamCall,
    stream_destroy: StreamCall,
    set_device: SetDevice,
    _library: libloading::Library,
}

fn check(what: &str, code: i32) -> Result<(), ort::Error> {
    match code {
        0 => Ok(()),
        code => Err(ort::Error::new(format!("{what} failed (cudaError {code})"))),
    }
}

impl CudaRuntime {
    /// A non-blocking stream on GPU `device`, made current on this thread.
    pub(crate) fn stream(&'static self, device: u32) -> Result<CopyStream, ort::Error> {
        let device = i32::try_from(device).map_err(|_| ort::Error::new(format!("GPU {device} out of range")))?;
        let mut stream: CudaStream = std::ptr::null_mut();
        // SAFETY: the signatures are the CUDA runtime's (cuda_runtime_api.h);
        // `stream` is a valid out pointer.
        unsafe {
            check("cudaSetDevice", (self.set_device)(device))?;
            check("cudaStreamCreateWithFlags", (self.stream_create)(&mut stream, STREAM_NON_BLOCKING))?;
        }
        Ok(CopyStream { stream, runtime: self })
    }

    /// Synchronous copy on the legacy default stream.
    ///
    /// # Safety
    /// `dst` and `src` must be valid for `bytes` (host or device memory).
    pub(crate) unsafe fn copy_legacy(
        &self,
        dst: *mut c_void,
        src: *const c_void,
        bytes: usize,
    ) -> Result<(), ort::Error> {
        check(&format!("cudaMemcpy of {bytes} bytes"), (self.memcpy)(dst, src, bytes, MEMCPY_DEFAULT))
    }
}

/// A CUDA stream of one session, destroyed with it.
pub(crate) struct CopyStream {
    stream: CudaStream,
    runtime: &'static CudaRuntime,
}

// SAFETY: a CUDA stream handle may be used and destroyed from any host
// thread; the session owning it runs on one thread at a time.
unsafe impl Send for CopyStream {}

impl CopyStream {
    /// Copies and waits for this stream alone: other streams' work (other
    /// sessions, the decoders) neither waits for it nor delays it.
    ///
    /// # Safety
    /// `dst` and `src` must be valid for `bytes`; host memory must be pinned
    /// for the copy to be asynchronous (pageable memory still copies right,
    /// only staged).
    pub(crate) unsafe fn copy(&self, dst: *mut c_void, src: *const c_void, bytes: usize) -> Result<(), ort::Error> {
        let what = || format!("cudaMemcpyAsync of {bytes} bytes");
        check(&what(), (self.runtime.memcpy_async)(dst, src, bytes, MEMCPY_DEFAULT, self.stream))?;
        check(&what(), (self.runtime.stream_synchronize)(self.stream))
    }
}

impl Drop for CopyStream {
    fn drop(&mut self) {
        // SAFETY: made by cudaStreamCreateWithFlags and destroyed once; a
        // copy on it has been waited for.
        let code = unsafe { (self.runtime.stream_destroy)(self.stream) };
        if code != 0 {
            tracing::debug!(code, "cudaStreamDestroy failed");
        }
    }
}

/// The CUDA runtime library ONNX Runtime's CUDA provider loaded, or why not.
pub(crate) fn runtime() -> Result<&'static CudaRuntime, String> {
    static RUNTIME: std::sync::OnceLock<Option<CudaRuntime>> = std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            ["libcudart.so.13", "libcudart.so.12", "libcudart.so"].into_iter().find_map(|name| {
                // SAFETY: libcudart's initialisers are safe to run; the
                // provider loaded the same library into this process already.
                let library = unsafe { libloading::Library::new(name) }.ok()?;
                let runtime = load(library);
                match &runtime {
                    Some(_) => tracing::debug!(library = name, "CUDA graph copies through the CUDA runtime"),
                    None => tracing::debug!(library = name, "a CUDA runtime symbol is missing"),
                }
                runtime
            })
        })
        .as_ref()
        .ok_or_else(|| {
            "the CUDA runtime library (libcudart.so.13 or .12) is not on the library path; it ships with CUDA and \
             the nvidia-cuda-runtime wheel"
                .to_string()
        })
}

fn load(library: libloading::Library) -> Option<CudaRuntime> {
    // SAFETY: each type is the named function's signature in
    // cuda_runtime_api.h; the pointers live as long as `library`, which the
    // returned value owns.
    unsafe {
        Some(CudaRuntime {
            memcpy: *library.get::<Memcpy>(b"cudaMemcpy\0").ok()?,
            memcpy_async: *library.get::<MemcpyAsync>(b"cudaMemcpyAsync\0").ok()?,
            stream_create: *library.get::<StreamCreateWithFlags>(b"cudaStreamCreateWithFlags\0").ok()?,
            stream_synchronize: *library.get::<StreamCall>(b"cudaStreamSynchronize\0").ok()?,
            stream_destroy: *library.get::<StreamCall>(b"cudaStreamDestroy\0").ok()?,
            set_device: *library.get::<SetDevice>(b"cudaSetDevice\0").ok()?,
            _library: library,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_default_to_a_stream_of_their_own() {
        assert_eq!(CopyMode::parse(None), Ok(CopyMode::Stream));
        assert_eq!(CopyMode::parse(Some("")), Ok(CopyMode::Stream));
        assert_eq!(CopyMode::parse(Some("stream")), Ok(CopyMode::Stream));
        assert_eq!(CopyMode::parse(Some(" legacy ")), Ok(CopyMode::Legacy));
        let error = CopyMode::parse(Some("ort")).unwrap_err();
        assert!(error.contains("DSHOST_CUDA_COPY") && error.contains("legacy"), "{error}");
    }

    #[test]
    fn without_the_cuda_runtime_the_reason_names_the_library() {
        // CI has no CUDA runtime: the lookup fails and says what to install.
        // SAFETY: as in `runtime`.
        let present = ["libcudart.so.13", "libcudart.so.12", "libcudart.so"]
            .into_iter()
            .any(|name| unsafe { libloading::Library::new(name) }.is_ok());
        if present {
            return;
        }
        let reason = runtime().err().unwrap_or_default();
        assert!(reason.contains("libcudart.so.13"), "{reason}");
    }
}
