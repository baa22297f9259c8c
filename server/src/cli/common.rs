//! What the engine commands share: loading the backbone with its thread count, and `--set KEY=VALUE`
//! training options.

use anyhow::{Context, Result};
use vigil::config::EngineArgs;
use vigil::engine::{self, Backbone, TrainOptions};

/// Sets the threads and loads (and warms up) the backbone.
pub(crate) fn backbone(e: &EngineArgs) -> Result<Backbone> {
    let threads = e.torch_threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    engine::set_threads(threads);
    Backbone::load(&e.backbone).with_context(|| format!("loading the backbone {}", e.backbone.display()))
}

/// `opts` with `KEY=VALUE` settings applied (values as JSON, or as plain strings), checked by
/// `TrainOptions`'s own deserialisation: unknown keys and ill-typed values are errors.
pub fn with_options(opts: TrainOptions, sets: &[String]) -> Result<TrainOptions> {
    let mut v = serde_json::to_value(&opts)?;
    for s in sets {
        let (k, val) = s.split_once('=').ok_or_else(|| anyhow::anyhow!("--set {s}: expected KEY=VALUE"))?;
        let obj = v.as_object_mut().ok_or_else(|| anyhow::anyhow!("options are not an object"))?;
        if !obj.contains_key(k) {
            let known: Vec<&str> = obj.keys().map(|k| k.as_str()).collect();
            anyhow::bail!("--set {s}: unknown training option {k:?} (known: {})", known.join(", "));
        }
        let parsed = serde_json::from_str(val).unwrap_or_else(|_| serde_json::Value::String(val.to_string()));
        obj.insert(k.to_string(), parsed);
    }
    serde_json::from_value(v).map_err(|e| anyhow::anyhow!("--set: {e}"))
}
