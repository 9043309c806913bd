//! A loaded strategy component: compiled, checked against the contract,
//! linked into an `InstancePre`, and described.

use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Engine, Store};

use super::bindings::{v0_1, v0_2, Contract, StrategyInfo, WIT_PACKAGES};
use super::sandbox::{self, GuestState, SandboxLimits};
use super::{ContentHash, LoadError};

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompileStats {
    pub from_cache: bool,
    pub duration: std::time::Duration,
}

/// Which world of the contract a component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// `strategy`: `handler` only.
    Stateless,
    /// `stateful-strategy`: `handler` and `state`, kept across reloads.
    Stateful,
}

impl World {
    pub fn as_str(self) -> &'static str {
        match self {
            World::Stateless => "strategy",
            World::Stateful => "stateful-strategy",
        }
    }
}

/// A strategy ready to be instantiated any number of times.
pub struct StrategyComponent {
    /// Name the operator gave the strategy (config or file stem).
    pub name: String,
    /// What the component says about itself.
    pub info: StrategyInfo,
    /// The version of the contract it implements.
    pub contract: Contract,
    pub world: World,
    pub content_hash: ContentHash,
    /// `<describe version>+sha256:<8 hex>`: tells two builds apart.
    pub version: String,
    pub compile: CompileStats,
    /// Import names of the component (for `strategy check`).
    pub imports: Vec<String>,
    pub(crate) pre: InstancePre<GuestState>,
    pub(crate) handler: HandlerIndices,
    pub(crate) state: Option<StateIndices>,
}

/// Where a component's `handler` exports are, per contract version.
pub(crate) enum HandlerIndices {
    V0_1(v0_1::exports::dshost::strategy::handler::GuestIndices),
    V0_2(v0_2::exports::dshost::strategy::handler::GuestIndices),
}

/// Where a component's `state` exports are, per contract version.
pub(crate) enum StateIndices {
    V0_1(v0_1::exports::dshost::strategy::state::GuestIndices),
    V0_2(v0_2::exports::dshost::strategy::state::GuestIndices),
}

impl HandlerIndices {
    fn new(contract: Contract, pre: &InstancePre<GuestState>) -> wasmtime::Result<Self> {
        Ok(match contract {
            Contract::V0_1 => HandlerIndices::V0_1(v0_1::exports::dshost::strategy::handler::GuestIndices::new(pre)?),
            Contract::V0_2 => HandlerIndices::V0_2(v0_2::exports::dshost::strategy::handler::GuestIndices::new(pre)?),
        })
    }
}

impl StateIndices {
    fn new(contract: Contract, pre: &InstancePre<GuestState>) -> wasmtime::Result<Self> {
        Ok(match contract {
            Contract::V0_1 => StateIndices::V0_1(v0_1::exports::dshost::strategy::state::GuestIndices::new(pre)?),
            Contract::V0_2 => StateIndices::V0_2(v0_2::exports::dshost::strategy::state::GuestIndices::new(pre)?),
        })
    }
}

impl std::fmt::Debug for StrategyComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StrategyComponent")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("contract", &self.contract)
            .field("world", &self.world)
            .finish_non_exhaustive()
    }
}

const MAX_INFO_FIELD: usize = 256;

impl StrategyComponent {
    pub(crate) fn link(
        engine: &Engine,
        linker: &Linker<GuestState>,
        name: &str,
        component: Component,
        content_hash: ContentHash,
        compile: CompileStats,
        limits: &SandboxLimits,
    ) -> Result<Self, LoadError> {
        let ty = component.component_type();
        let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
        let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();

        // Export lookups accept semver-compatible versions (0.2.x, 0.1.x).
        let Some(contract) =
            Contract::ALL.into_iter().find(|c| component.get_export_index(None, c.handler_interface()).is_some())
        else {
            return Err(LoadError::WrongInterface { expected: WIT_PACKAGES.to_string(), exports });
        };
        let world = if component.get_export_index(None, contract.state_interface()).is_some() {
            World::Stateful
        } else {
            World::Stateless
        };
        let package = contract.package();

        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Imports { message: format!("{e:#}"), imports: imports.clone() })?;
        let handler = HandlerIndices::new(contract, &pre).map_err(|e| LoadError::WrongInterface {
            expected: format!("{package} ({e:#})"),
            exports: exports.clone(),
        })?;
        let state = match world {
            World::Stateful => Some(StateIndices::new(contract, &pre).map_err(|e| LoadError::WrongInterface {
                expected: format!("{package} ({e:#})"),
                exports: exports.clone(),
            })?),
            World::Stateless => None,
        };

        let info = describe(engine, &pre, &handler, name, limits)?;
        let version = format!("{}+sha256:{}", info.version, &content_hash.hex()[..8]);
        Ok(StrategyComponent {
            name: name.to_string(),
            info,
            contract,
            world,
            content_hash,
            version,
            compile,
            imports,
            pre,
            handler,
            state,
        })
    }
}

/// Calls `describe` in a throwaway instance and checks the answer.
fn describe(
    engine: &Engine,
    pre: &InstancePre<GuestState>,
    handler: &HandlerIndices,
    name: &str,
    limits: &SandboxLimits,
) -> Result<StrategyInfo, LoadError> {
    let mut store = sandbox::new_store(engine, limits, name, "-", limits.setup_timeout);
    let call = |store: &mut Store<GuestState>| -> wasmtime::Result<StrategyInfo> {
        let instance = pre.instantiate(&mut *store)?;
        match handler {
            HandlerIndices::V0_1(indices) => indices.load(&mut *store, &instance)?.call_describe(&mut *store),
            HandlerIndices::V0_2(indices) => {
                indices.load(&mut *store, &instance)?.call_describe(&mut *store).map(StrategyInfo::from)
            }
        }
    };
    let info = call(&mut store).map_err(|error| {
        let kind = sandbox::classify(&error, store.data());
        LoadError::Describe(format!("{kind}: {error:#}"))
    })?;
    let fields = [("name", &info.name), ("version", &info.version), ("description", &info.description)];
    for (field, value) in fields {
        if value.len() > MAX_INFO_FIELD || value.chars().any(char::is_control) {
            return Err(LoadError::Describe(format!(
                "`describe` returned an unusable {field} (control characters or over {MAX_INFO_FIELD} bytes)"
            )));
        }
    }
    if info.name.is_empty() || info.version.is_empty() {
        return Err(LoadError::Describe("`describe` must return a non-empty name and version".to_string()));
    }
    Ok(info)
}
