//! The runtime: the layer above the stages that composes them. It owns the
//! running sources (each with its pipeline, object stage and strategy
//! worker), the strategy plans and their hot reload, the alert path
//! (dispatcher and sinks), and applies configuration, at startup and on
//! every change, as a diff of one desired state. The stages (`pipeline`,
//! `detect`, `strategy`, `alerts`) never import each other; what they hand
//! over lives in `frame`.

pub mod backend;
pub mod control;
pub mod memory;
pub mod objects;
pub mod placement;
pub mod replay;
pub mod service;
pub mod sources;
pub mod strategies;
pub mod summary;
pub mod watch;
pub mod worker;

pub use control::{ApplyReport, Control, ControlError};
pub use service::{Service, ServiceError, ServiceOptions};
pub use sources::{Runtime, RuntimeError, RuntimeSettings, StrategyPlan};
pub use strategies::{Reloader, StrategySpec};
pub use summary::RunSummary;

use crate::alerts::alert::{AlertBox, AlertLevel, Finding};
use crate::strategy::bindings::Level;
use crate::strategy::ValidDetection;

/// A validated detection as the alert stage takes it.
pub fn finding(detection: ValidDetection) -> Finding {
    Finding {
        pattern: detection.pattern,
        confidence: detection.confidence,
        bbox: AlertBox { left: detection.left, top: detection.top, width: detection.width, height: detection.height },
        object_id: detection.object_id,
        level: match detection.level {
            Level::Low => AlertLevel::Low,
            Level::Medium => AlertLevel::Medium,
            Level::High => AlertLevel::High,
            Level::Critical => AlertLevel::Critical,
        },
        attributes: detection.attributes,
    }
}
