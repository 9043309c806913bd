//! Which GPU each source runs on (decode and inference on the same GPU, so a
//! frame never crosses between GPUs): a pure function of the GPUs, what they
//! carry now, and the source, so the decisions are tested without GPUs.
//!
//! A source pinned with `device_id` goes where it says (an id the host does
//! not have is an error naming the ids it has); every other source goes to
//! the GPU with the least load, load being the pixels per second of the
//! sources it runs (a 1080p30 camera weighs four times a 720p15 one), ties to
//! the lowest id, so a fleet of equal cameras is spread round-robin.

use std::collections::BTreeMap;

/// A source asking for a place.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub source: String,
    /// `device_id` of the source's config.
    pub pinned: Option<u32>,
    /// Expected pixels per second (width x height x fps), or 0 when unknown
    /// (then it weighs like a 1080p30 camera).
    pub weight: u64,
}

/// A 1080p30 source, the weight of a source whose size is not known yet.
pub const DEFAULT_WEIGHT: u64 = 1920 * 1080 * 30;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("no GPU to place source `{0}` on (GPU decode and inference need an NVIDIA GPU)")]
    NoGpu(String),
    #[error("source `{source_id}` asks for `device_id: {asked}`, but this host's GPUs are {available:?}")]
    NoSuchGpu { source_id: String, asked: u32, available: Vec<u32> },
}

/// The GPUs of the host and what each carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Placement {
    /// GPU id -> (source -> weight).
    gpus: BTreeMap<u32, BTreeMap<String, u64>>,
}

impl Placement {
    /// GPUs with these ids, empty.
    pub fn new(gpus: impl IntoIterator<Item = u32>) -> Self {
        Placement { gpus: gpus.into_iter().map(|id| (id, BTreeMap::new())).collect() }
    }

    /// The weight a GPU carries.
    pub fn load(&self, gpu: u32) -> u64 {
        self.gpus.get(&gpu).map(|s| s.values().sum()).unwrap_or(0)
    }

    /// Places one source and records it; returns its GPU.
    pub fn place(&mut self, request: &Request) -> Result<u32, PlacementError> {
        self.remove(&request.source);
        let available: Vec<u32> = self.gpus.keys().copied().collect();
        let gpu = match request.pinned {
            Some(asked) if self.gpus.contains_key(&asked) => asked,
            Some(asked) => {
                return Err(PlacementError::NoSuchGpu { source_id: request.source.clone(), asked, available })
            }
            None => {
                let least = available.iter().copied().min_by_key(|&gpu| (self.load(gpu), gpu));
                least.ok_or_else(|| PlacementError::NoGpu(request.source.clone()))?
            }
        };
        let weight = if request.weight == 0 { DEFAULT_WEIGHT } else { request.weight };
        if let Some(sources) = self.gpus.get_mut(&gpu) {
            sources.insert(request.source.clone(), weight);
        }
        Ok(gpu)
    }

    /// Places many sources at once: pinned ones first, then the others
    /// heaviest first (the greedy order that balances best).
    pub fn place_all(&mut self, requests: &[Request]) -> Result<Vec<(String, u32)>, PlacementError> {
        let mut order: Vec<&Request> = requests.iter().collect();
        order.sort_by_key(|r| (r.pinned.is_none(), std::cmp::Reverse(r.weight)));
        let mut placed = Vec::new();
        for request in order {
            placed.push((request.source.clone(), self.place(request)?));
        }
        Ok(placed)
    }

    /// A source stopped: its GPU carries less.
    pub fn remove(&mut self, source: &str) {
        for sources in self.gpus.values_mut() {
            sources.remove(source);
        }
    }

    /// GPU of a placed source.
    pub fn gpu_of(&self, source: &str) -> Option<u32> {
        self.gpus.iter().find(|(_, s)| s.contains_key(source)).map(|(gpu, _)| *gpu)
    }
}

/// The GPUs of this host: `/dev/nvidia<N>` device nodes (what the NVIDIA
/// driver creates, one per GPU), or `configured` when set.
pub fn host_gpus(configured: Option<&[u32]>) -> Vec<u32> {
    if let Some(ids) = configured {
        return ids.to_vec();
    }
    let mut ids: Vec<u32> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.strip_prefix("nvidia")?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera(name: &str, weight: u64) -> Request {
        Request { source: name.into(), pinned: None, weight }
    }

    #[test]
    fn equal_cameras_are_spread_round_robin() {
        let mut placement = Placement::new([0, 1]);
        let placed: Vec<u32> = (0..6).map(|i| placement.place(&camera(&format!("c{i}"), 100)).unwrap()).collect();
        assert_eq!(placed, [0, 1, 0, 1, 0, 1]);
        assert_eq!((placement.load(0), placement.load(1)), (300, 300));
    }

    #[test]
    fn heavier_sources_balance_by_pixels_not_by_count() {
        let hd30 = 1920 * 1080 * 30;
        let sd15 = 1280 * 720 * 15;
        let mut placement = Placement::new([0, 1]);
        let mut requests = vec![camera("big", hd30)];
        requests.extend((0..4).map(|i| camera(&format!("small{i}"), sd15)));
        let placed = placement.place_all(&requests).unwrap();
        // The 1080p30 camera weighs 4.5 720p15 ones: all four small ones
        // go to the other GPU.
        assert_eq!(placed[0], ("big".to_string(), 0));
        assert!(placed[1..].iter().all(|(_, gpu)| *gpu == 1), "{placed:?}");
    }

    #[test]
    fn pinned_sources_go_where_they_say_and_count() {
        let mut placement = Placement::new([0, 1, 2, 3]);
        let pinned = Request { source: "gate".into(), pinned: Some(2), weight: 100 };
        let placed = placement
            .place_all(&[camera("a", 100), pinned.clone(), camera("b", 100), camera("c", 100), camera("d", 100)])
            .unwrap();
        let on = |name: &str| placed.iter().find(|(s, _)| s == name).map(|(_, g)| *g);
        assert_eq!(on("gate"), Some(2));
        // GPU 2 already carries the pinned one: the four others fill 0, 1, 3
        // first, then the least loaded lowest id.
        let mut others: Vec<u32> = ["a", "b", "c", "d"].iter().filter_map(|n| on(n)).collect();
        others.sort();
        assert_eq!(others, [0, 0, 1, 3]);
        let wrong = Request { source: "x".into(), pinned: Some(7), weight: 1 };
        let error = placement.place(&wrong).unwrap_err();
        assert_eq!(error.to_string(), "source `x` asks for `device_id: 7`, but this host's GPUs are [0, 1, 2, 3]");
    }

    #[test]
    fn removed_sources_free_their_gpu_and_unknown_sizes_weigh_like_1080p30() {
        let mut placement = Placement::new([0, 1]);
        placement.place(&camera("a", 0)).unwrap();
        placement.place(&camera("b", 0)).unwrap();
        assert_eq!(placement.load(0), DEFAULT_WEIGHT);
        placement.remove("a");
        assert_eq!(placement.place(&camera("c", 10)).unwrap(), 0, "GPU 0 is free again");
        assert_eq!(placement.gpu_of("b"), Some(1));
        // Placing a source again moves it, never counts it twice.
        placement.place(&camera("b", 0)).unwrap();
        assert_eq!(placement.load(0) + placement.load(1), DEFAULT_WEIGHT + 10);
        assert!(matches!(Placement::new([]).place(&camera("z", 1)), Err(PlacementError::NoGpu(_))));
    }

    #[test]
    fn configured_gpus_win_over_the_device_nodes() {
        assert_eq!(host_gpus(Some(&[3, 1])), [3, 1]);
    }
}
