//! Execution providers: which one a model runs on. Chosen like
//! `pipeline.decoder`: `auto` takes CUDA when it starts and falls back to
//! the CPU with the reason; an explicit `cuda` or `tensorrt` that cannot
//! start is an error naming what is missing.

use serde::Serialize;

use super::runtime::OrtRuntime;
use crate::config::OnnxProvider;

/// A provider a session can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Cpu,
    Cuda,
    #[serde(rename = "tensorrt")]
    TensorRt,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
            Provider::TensorRt => "tensorrt",
        }
    }

    /// ONNX Runtime's name for it.
    pub fn ort_name(self) -> &'static str {
        match self {
            Provider::Cpu => "CPUExecutionProvider",
            Provider::Cuda => "CUDAExecutionProvider",
            Provider::TensorRt => "TensorrtExecutionProvider",
        }
    }

    pub fn is_gpu(self) -> bool {
        self != Provider::Cpu
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a provider starts here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "lowercase")]
pub enum ProviderStatus {
    Usable,
    /// Why not, and what would fix it.
    Unusable(String),
}

impl ProviderStatus {
    pub fn is_usable(&self) -> bool {
        matches!(self, ProviderStatus::Usable)
    }
}

/// The providers' status on one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderSupport {
    /// Usable unless the loaded library cannot run a one-node model.
    pub cpu: ProviderStatus,
    pub cuda: ProviderStatus,
    pub tensorrt: ProviderStatus,
}

/// What [`select_provider`] picked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderChoice {
    pub provider: Provider,
    /// Set when `auto` fell back to the CPU: why the GPU was not used.
    pub fallback_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`pipeline.onnx.provider: {provider}` cannot start: {reason}. Use `provider: auto` to fall back to the CPU, \
     or `provider: cpu`"
)]
pub struct ProviderError {
    pub provider: Provider,
    pub reason: String,
}

/// Picks the provider for `requested` given what starts here. Pure: the
/// support is probed by [`OrtRuntime::provider_support`].
pub fn select_provider(requested: OnnxProvider, support: &ProviderSupport) -> Result<ProviderChoice, ProviderError> {
    let explicit = |provider: Provider, status: &ProviderStatus| match status {
        ProviderStatus::Usable => Ok(ProviderChoice { provider, fallback_reason: None }),
        ProviderStatus::Unusable(reason) => Err(ProviderError { provider, reason: reason.clone() }),
    };
    match requested {
        OnnxProvider::Cpu => Ok(ProviderChoice { provider: Provider::Cpu, fallback_reason: None }),
        OnnxProvider::Cuda => explicit(Provider::Cuda, &support.cuda),
        OnnxProvider::Tensorrt => explicit(Provider::TensorRt, &support.tensorrt),
        // TensorRT is never picked by `auto`: its engines take minutes to
        // build at the first start, which nobody expects from a default.
        OnnxProvider::Auto => match &support.cuda {
            ProviderStatus::Usable => Ok(ProviderChoice { provider: Provider::Cuda, fallback_reason: None }),
            ProviderStatus::Unusable(reason) => {
                Ok(ProviderChoice { provider: Provider::Cpu, fallback_reason: Some(format!("CUDA: {reason}")) })
            }
        },
    }
}

/// Registers `provider` on a session builder; an error when it does not
/// register (never a silent CPU fallback: the choice was made already).
/// `cuda_graph`: the session captures its run as a CUDA graph (its inputs
/// and outputs must then be bound to fixed device buffers; see
/// `session::GraphIo`). Ignored on the CPU.
pub(crate) fn register(
    builder: &mut ort::session::builder::SessionBuilder,
    provider: Provider,
    device_id: u32,
    cuda_graph: bool,
) -> Result<(), ort::Error> {
    use ort::ep::ExecutionProvider;
    let device = i32::try_from(device_id).unwrap_or(i32::MAX);
    let cuda = || ort::ep::CUDA::default().with_device_id(device).with_cuda_graph(cuda_graph);
    match provider {
        Provider::Cpu => Ok(()),
        Provider::Cuda => cuda().register(builder),
        Provider::TensorRt => {
            // TensorRT hands the nodes it cannot run to CUDA, as ONNX
            // Runtime's documentation recommends; engines are cached.
            ort::ep::TensorRT::default()
                .with_device_id(device)
                .with_engine_cache(true)
                .with_engine_cache_path(tensorrt_cache_dir().display().to_string())
                .with_cuda_graph(cuda_graph)
                .register(builder)?;
            cuda().register(builder)
        }
    }
}

fn tensorrt_cache_dir() -> std::path::PathBuf {
    crate::paths::default_data_dir().join("cache").join("tensorrt")
}

/// Tries `provider` on `device_id`: is it compiled into the loaded library,
/// does it register (its libraries load), does a session start on the
/// device. Used once per process (see [`OrtRuntime::provider_status`]).
pub(crate) fn try_provider(runtime: &OrtRuntime, provider: Provider, device_id: u32) -> ProviderStatus {
    use ort::ep::ExecutionProvider;
    let compiled = match provider {
        Provider::Cpu => Ok(true),
        Provider::Cuda => ort::ep::CUDA::is_available(),
        Provider::TensorRt => ort::ep::TensorRT::is_available(),
    };
    match compiled {
        Ok(true) => {}
        Ok(false) => {
            return ProviderStatus::Unusable(format!(
                "the ONNX Runtime library {} ({}) has no {}; it is a CPU-only build. Fetch the GPU build with \
                 `bash scripts/fetch-models.sh --gpu` (onnxruntime-gpu, CUDA 13) or point DSHOST_ORT_LIB at a GPU \
                 build's libonnxruntime.so",
                runtime.library().display(),
                runtime.version(),
                provider.ort_name()
            ))
        }
        Err(e) => return ProviderStatus::Unusable(format!("cannot list ONNX Runtime's providers: {e}")),
    }
    let result = (|| -> Result<(), ort::Error> {
        let mut builder = ort::session::Session::builder(runtime.environment())?;
        register(&mut builder, provider, device_id, false)?;
        builder.commit_from_memory(&identity_model())?;
        Ok(())
    })();
    match result {
        Ok(()) => ProviderStatus::Usable,
        Err(e) => ProviderStatus::Unusable(format!(
            "{} did not start on device {device_id}: {e}{}",
            provider.ort_name(),
            match provider {
                Provider::Cuda =>
                    " (it needs an NVIDIA driver and GPU, the CUDA 13 runtime and cuBLAS, and cuDNN 9 \
                                   on the library path)",
                Provider::TensorRt => " (it needs TensorRT 10 (libnvinfer.so.10) besides what CUDA needs)",
                Provider::Cpu => "",
            }
        )),
    }
}

/// A one-node ONNX model (`y = Identity(x)`, float[1]), encoded by hand so
/// that probing a provider needs no model file.
pub(crate) fn identity_model() -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut value: u64) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    fn field_varint(out: &mut Vec<u8>, field: u32, value: u64) {
        varint(out, u64::from(field) << 3);
        varint(out, value);
    }
    fn field_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
        varint(out, (u64::from(field) << 3) | 2);
        varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
    // ValueInfoProto { name, type: TypeProto { tensor_type { elem_type: FLOAT, shape { dim { dim_value: 1 } } } } }
    fn value_info(name: &str) -> Vec<u8> {
        let mut dim = Vec::new();
        field_varint(&mut dim, 1, 1);
        let mut shape = Vec::new();
        field_bytes(&mut shape, 1, &dim);
        let mut tensor = Vec::new();
        field_varint(&mut tensor, 1, 1);
        field_bytes(&mut tensor, 2, &shape);
        let mut ty = Vec::new();
        field_bytes(&mut ty, 1, &tensor);
        let mut info = Vec::new();
        field_bytes(&mut info, 1, name.as_bytes());
        field_bytes(&mut info, 2, &ty);
        info
    }
    let mut node = Vec::new();
    field_bytes(&mut node, 1, b"x");
    field_bytes(&mut node, 2, b"y");
    field_bytes(&mut node, 4, b"Identity");
    let mut graph = Vec::new();
    field_bytes(&mut graph, 1, &node);
    field_bytes(&mut graph, 2, b"probe");
    field_bytes(&mut graph, 11, &value_info("x"));
    field_bytes(&mut graph, 12, &value_info("y"));
    let mut opset = Vec::new();
    field_varint(&mut opset, 2, 13);
    let mut model = Vec::new();
    field_varint(&mut model, 1, 8); // ir_version
    field_bytes(&mut model, 7, &graph);
    field_bytes(&mut model, 8, &opset);
    model
}

#[cfg(test)]
mod tests {
    use super::*;

    fn support(cuda: ProviderStatus, tensorrt: ProviderStatus) -> ProviderSupport {
        ProviderSupport { cpu: ProviderStatus::Usable, cuda, tensorrt }
    }

    const NO_CUDA: &str = "the library is a CPU-only build";

    #[test]
    fn auto_prefers_cuda_and_falls_back_with_the_reason() {
        let gpu = support(ProviderStatus::Usable, ProviderStatus::Usable);
        assert_eq!(select_provider(OnnxProvider::Auto, &gpu).unwrap().provider, Provider::Cuda);
        let cpu_only = support(ProviderStatus::Unusable(NO_CUDA.into()), ProviderStatus::Unusable("x".into()));
        let choice = select_provider(OnnxProvider::Auto, &cpu_only).unwrap();
        assert_eq!(choice.provider, Provider::Cpu);
        assert_eq!(choice.fallback_reason.as_deref(), Some("CUDA: the library is a CPU-only build"));
        // `auto` never picks TensorRT, even when only TensorRT would start.
        let trt_only = support(ProviderStatus::Unusable(NO_CUDA.into()), ProviderStatus::Usable);
        assert_eq!(select_provider(OnnxProvider::Auto, &trt_only).unwrap().provider, Provider::Cpu);
    }

    #[test]
    fn explicit_gpu_providers_that_cannot_start_are_errors() {
        let cpu_only = support(
            ProviderStatus::Unusable(NO_CUDA.into()),
            ProviderStatus::Unusable("libnvinfer.so.10: cannot open shared object file".into()),
        );
        let error = select_provider(OnnxProvider::Cuda, &cpu_only).unwrap_err();
        assert_eq!(error.provider, Provider::Cuda);
        let text = error.to_string();
        assert!(text.contains("provider: cuda") && text.contains(NO_CUDA) && text.contains("provider: auto"), "{text}");
        let error = select_provider(OnnxProvider::Tensorrt, &cpu_only).unwrap_err();
        assert!(error.to_string().contains("libnvinfer.so.10"), "{error}");
        let choice = select_provider(OnnxProvider::Cpu, &cpu_only).unwrap();
        assert_eq!(choice, ProviderChoice { provider: Provider::Cpu, fallback_reason: None });
        let gpu = support(ProviderStatus::Usable, ProviderStatus::Usable);
        assert_eq!(select_provider(OnnxProvider::Tensorrt, &gpu).unwrap().provider, Provider::TensorRt);
    }

    #[test]
    fn identity_model_is_well_formed_protobuf() {
        let model = identity_model();
        // ir_version 8, then the graph (field 7, length-delimited).
        assert_eq!(&model[..3], &[0x08, 0x08, 0x3a]);
        assert!(model.windows(8).any(|w| w == b"Identity"));
    }
}
