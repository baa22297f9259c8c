//! What a model package is: the files `StartModelPackagingJob` writes to its `S3OutputLocation` and `vigil edge
//! install` reads back. Both sides use this one module, so they cannot disagree.
//!
//! A package is four files side by side:
//! - `model.vigil`: the model version's model file, byte for byte the blob the server detects with;
//! - `vigil-model.json` ([`Manifest`]): what the agent needs besides it — backbone id and checksum, input and
//!   normalisation, the threshold in force when packaged, anomaly labels and colours — and the SHA-256 and size
//!   of every other file;
//! - `recipe.json` and `recipe.yaml`: the same AWS IoT Greengrass V2 component recipe (format 2020-01-25), whose
//!   artifacts are the two files above by S3 URI and whose lifecycle installs them into the agent component
//!   ([`AGENT_COMPONENT`]) it depends on.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub const MODEL_FILE: &str = "model.vigil";
pub const MANIFEST_FILE: &str = "vigil-model.json";
pub const RECIPE_JSON: &str = "recipe.json";
pub const RECIPE_YAML: &str = "recipe.yaml";
/// Every file of a package, in the order they are written (the manifest last but one: an install reads it first).
pub const FILES: [&str; 4] = [MODEL_FILE, MANIFEST_FILE, RECIPE_JSON, RECIPE_YAML];
/// The manifest's format; an agent refuses a format it does not know.
pub const FORMAT: &str = "vigil-edge-model/1";
/// The agent's own component, the dependency of every model component (LFV's was `aws.iot.lookoutvision.EdgeAgent`).
pub const AGENT_COMPONENT: &str = "vigil.EdgeAgent";
/// The folder inside the agent component's archive (`server/scripts/package_agent.sh`): `bin/vigil-edge`
/// (the binary with its libraries and backbone beside it).
pub const AGENT_ARCHIVE_DIR: &str = "vigil-edge-agent";
/// Largest model file a package may carry (an install refuses larger ones before reading them).
pub const MAX_MODEL_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// What a package was built for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// `linux`.
    pub os: String,
    /// `x86_64` or `aarch64` (Greengrass: `amd64`, `aarch64`).
    pub arch: String,
    /// What the user asked for (`TargetDevice` or `TargetPlatform`, as given), for the record.
    pub requested: String,
    /// The agent runs on the CPU; a package asked for a GPU or a Jetson says so here.
    pub note: Option<String>,
}

/// One anomaly label of a segmentation model, with its colour in the mask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub name: String,
    pub hex_color: String,
}

/// A file of the package: its SHA-256 (hex) and size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    pub sha256: String,
    pub size: u64,
}

/// `vigil-model.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub component_name: String,
    pub component_version: String,
    pub model_arn: String,
    pub project_name: String,
    pub model_version: i64,
    /// The backbone the model was trained with: an agent with another one refuses the package.
    pub backbone_id: String,
    pub backbone_sha256: Option<String>,
    pub input_width: u32,
    pub input_height: u32,
    pub input_mean: [f32; 3],
    pub input_std: [f32; 3],
    /// The threshold in force when the version was packaged (a saved threshold, or the trained one).
    pub threshold: f32,
    pub segmentation: bool,
    pub anomaly_labels: Vec<Label>,
    pub target: Target,
    pub created_at: String,
    /// Every other file of the package (the model file).
    pub files: BTreeMap<String, FileSum>,
}

/// What a packaging job knows about the package to build.
#[derive(Clone, Debug)]
pub struct Spec {
    pub component_name: String,
    pub component_version: String,
    pub component_description: Option<String>,
    pub model_arn: String,
    pub project_name: String,
    pub model_version: i64,
    pub threshold: Option<f32>,
    pub target: Target,
    /// `s3://bucket/prefix/` the files are written under (the recipe names its artifacts by it).
    pub s3_prefix_uri: String,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Builds the package's files from the model file's bytes: `(name, bytes)` in [`FILES`] order.
pub fn build(spec: &Spec, model_file: &[u8]) -> Result<Vec<(&'static str, Vec<u8>)>, String> {
    let header_json = crate::engine::artifact::read_header(model_file).map_err(|e| format!("the model file is unreadable: {e}"))?;
    let header: crate::engine::ModelHeader =
        serde_json::from_value(header_json).map_err(|e| format!("the model file's header is unreadable: {e}"))?;
    let mut files = BTreeMap::new();
    files.insert(MODEL_FILE.to_string(), FileSum { sha256: sha256_hex(model_file), size: model_file.len() as u64 });
    let manifest = Manifest {
        format: FORMAT.into(),
        component_name: spec.component_name.clone(),
        component_version: spec.component_version.clone(),
        model_arn: spec.model_arn.clone(),
        project_name: spec.project_name.clone(),
        model_version: spec.model_version,
        backbone_id: header.backbone.id.clone(),
        backbone_sha256: header.backbone.sha256.clone(),
        input_width: header.input.width,
        input_height: header.input.height,
        input_mean: header.input.mean,
        input_std: header.input.std,
        threshold: spec.threshold.unwrap_or(header.threshold),
        segmentation: header.segmentation,
        anomaly_labels: header.labels.iter().map(|l| Label { name: l.name.clone(), hex_color: l.color.clone() }).collect(),
        target: spec.target.clone(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        files,
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    let recipe = recipe(spec, &manifest, &manifest_bytes);
    let recipe_json = serde_json::to_vec_pretty(&recipe).map_err(|e| e.to_string())?;
    let recipe_yaml = serde_yaml::to_string(&recipe).map_err(|e| e.to_string())?.into_bytes();
    Ok(vec![(MODEL_FILE, model_file.to_vec()), (MANIFEST_FILE, manifest_bytes), (RECIPE_JSON, recipe_json), (RECIPE_YAML, recipe_yaml)])
}

/// The Greengrass V2 recipe: the model's artifacts by S3 URI (with their digests, as Greengrass checks them),
/// one manifest per Linux architecture, and an install step that hands the artifacts to the agent.
fn recipe(spec: &Spec, m: &Manifest, manifest_bytes: &[u8]) -> serde_json::Value {
    use base64::Engine;
    let b64 = |hex_digest: &str| base64::engine::general_purpose::STANDARD.encode(hex::decode(hex_digest).unwrap_or_default());
    let model = &m.files[MODEL_FILE];
    let artifacts = serde_json::json!([
        { "URI": format!("{}{MODEL_FILE}", spec.s3_prefix_uri), "Digest": b64(&model.sha256), "Algorithm": "SHA-256", "Permission": { "Read": "OWNER" } },
        { "URI": format!("{}{MANIFEST_FILE}", spec.s3_prefix_uri), "Digest": b64(&sha256_hex(manifest_bytes)), "Algorithm": "SHA-256", "Permission": { "Read": "OWNER" } },
    ]);
    let gg_arch = if m.target.arch == "aarch64" { "aarch64" } else { "amd64" };
    let lifecycle = serde_json::json!({
        "Install": {
            "Script": format!(
                "{{{AGENT_COMPONENT}:artifacts:decompressedPath}}/{AGENT_ARCHIVE_DIR}/bin/vigil-edge edge install \
                 --dir {{{AGENT_COMPONENT}:work:path}} --start-on-boot {{artifacts:path}}"
            ),
            "RequiresPrivilege": false,
        },
    });
    serde_json::json!({
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": spec.component_name,
        "ComponentVersion": spec.component_version,
        "ComponentType": "aws.greengrass.generic",
        "ComponentDescription": spec.component_description.clone().unwrap_or_else(|| format!("Vigil model {} version {}", m.project_name, m.model_version)),
        "ComponentPublisher": "Vigil",
        // Six decimals, so the JSON and the YAML recipe print the same number (the agent reads the manifest's).
        "ComponentConfiguration": { "DefaultConfiguration": { "ModelArn": m.model_arn, "Threshold": (m.threshold as f64 * 1e6).round() / 1e6 } },
        "ComponentDependencies": { AGENT_COMPONENT: { "VersionRequirement": ">=0.1.0", "DependencyType": "HARD" } },
        "Manifests": [
            { "Platform": { "os": "linux", "architecture": gg_arch }, "Lifecycle": lifecycle, "Artifacts": artifacts }
        ],
    })
}

/// Reads and checks a manifest: the format, the component name, and that its numbers are sane.
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest, String> {
    let m: Manifest = serde_json::from_slice(bytes).map_err(|e| format!("{MANIFEST_FILE} is not a Vigil model manifest: {e}"))?;
    if m.format != FORMAT {
        return Err(format!("{MANIFEST_FILE} has format {:?}; this agent reads {FORMAT:?}", m.format));
    }
    if !valid_component_name(&m.component_name) {
        return Err(format!("{MANIFEST_FILE} names an invalid component {:?}", m.component_name));
    }
    match m.files.get(MODEL_FILE) {
        Some(f) if f.size <= MAX_MODEL_BYTES && f.sha256.len() == 64 => Ok(m),
        Some(_) => Err(format!("{MANIFEST_FILE} lists a model file that is too large or has no SHA-256")),
        None => Err(format!("{MANIFEST_FILE} lists no {MODEL_FILE}")),
    }
}

/// Checks a file's bytes against the manifest's SHA-256 and size.
pub fn check_file(m: &Manifest, name: &str, bytes: &[u8]) -> Result<(), String> {
    let f = m.files.get(name).ok_or_else(|| format!("{name} is not listed in {MANIFEST_FILE}"))?;
    if f.size != bytes.len() as u64 || f.sha256 != sha256_hex(bytes) {
        return Err(format!("{name} does not match its SHA-256 in {MANIFEST_FILE}: the package is damaged or was altered"));
    }
    Ok(())
}

/// LFV's `ComponentName` pattern: 1–128 of `[a-zA-Z0-9-_.]`.
pub fn valid_component_name(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// LFV's `ComponentVersion` pattern: `x.y.z`, each part digits.
pub fn valid_component_version(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    s.len() <= 64 && parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_versions_follow_lfv() {
        assert!(valid_component_name("com.example.cookie-model_1"));
        assert!(!valid_component_name(""));
        assert!(!valid_component_name("a/b"));
        assert!(!valid_component_name(&"a".repeat(129)));
        assert!(valid_component_version("1.0.0"));
        assert!(!valid_component_version("1.0"));
        assert!(!valid_component_version("1.a.0"));
        assert!(!valid_component_version("1..0"));
    }

    #[test]
    fn a_changed_byte_is_found() {
        let mut files = BTreeMap::new();
        files.insert(MODEL_FILE.to_string(), FileSum { sha256: sha256_hex(b"model"), size: 5 });
        let m = Manifest {
            format: FORMAT.into(),
            component_name: "c".into(),
            component_version: "1.0.0".into(),
            model_arn: "arn".into(),
            project_name: "p".into(),
            model_version: 1,
            backbone_id: "b".into(),
            backbone_sha256: None,
            input_width: 64,
            input_height: 64,
            input_mean: [0.5; 3],
            input_std: [0.5; 3],
            threshold: 0.5,
            segmentation: false,
            anomaly_labels: vec![],
            target: Target { os: "linux".into(), arch: "x86_64".into(), requested: "x".into(), note: None },
            created_at: "now".into(),
            files,
        };
        assert!(check_file(&m, MODEL_FILE, b"model").is_ok());
        assert!(check_file(&m, MODEL_FILE, b"modem").is_err());
        assert!(check_file(&m, "other", b"model").is_err());
        let round = parse_manifest(&serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!(round, m);
        let mut bad = m.clone();
        bad.format = "other/2".into();
        assert!(parse_manifest(&serde_json::to_vec(&bad).unwrap()).is_err());
    }
}
