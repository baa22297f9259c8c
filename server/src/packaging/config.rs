//! A packaging job's configuration (LFV's `GreengrassConfiguration`, parsed) and LFV's rules for it; the form
//! it is stored in (JSON in the job's row).

use crate::edge::package::{self, valid_component_name, valid_component_version};
use serde::{Deserialize, Serialize};

/// A configuration LFV refused (the reason, as a sentence a user can act on).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidConfig(pub String);

/// LFV's only `TargetDevice`.
pub const JETSON_XAVIER: &str = "jetson_xavier";
/// What a package asked for a GPU or a Jetson says (in its manifest and in the job's status message).
pub const CPU_NOTE: &str = "packaged for the device's CPU: the Vigil agent runs on the CPU";

/// `TargetPlatform.Arch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arch {
    #[serde(rename = "X86_64")]
    X86_64,
    #[serde(rename = "ARM64")]
    Arm64,
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "X86_64",
            Arch::Arm64 => "ARM64",
        }
    }
}

/// Exactly one of LFV's `TargetDevice` and `TargetPlatform`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// `TargetDevice` (`jetson_xavier`).
    Device { device: String },
    /// `TargetPlatform`: `LINUX` on an architecture, with `Accelerator: NVIDIA` or on the CPU.
    Platform { arch: Arch, nvidia: bool },
}

impl Target {
    /// What the package records about its target: the Linux architecture the agent runs on, and a note when
    /// a GPU was asked for.
    pub fn edge_target(&self) -> package::Target {
        let (arch, requested, note) = match self {
            Target::Device { device } => ("aarch64", device.clone(), Some(CPU_NOTE.to_string())),
            Target::Platform { arch, nvidia } => {
                let a = if *arch == Arch::Arm64 { "aarch64" } else { "x86_64" };
                let requested = format!("LINUX/{}{}", arch.as_str(), if *nvidia { "/NVIDIA" } else { "" });
                (a, requested, nvidia.then(|| CPU_NOTE.to_string()))
            }
        };
        package::Target { os: "linux".into(), arch: arch.into(), requested, note }
    }
}

/// LFV's `GreengrassConfiguration`, parsed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Greengrass {
    pub component_name: String,
    /// `None` in a request without one; a started job has `{ModelVersion}.0.0` then.
    pub component_version: Option<String>,
    pub component_description: Option<String>,
    pub target: Target,
    /// Recorded as given (the agent runs on the CPU and compiles nothing).
    pub compiler_options: Option<String>,
    pub bucket: String,
    /// As given (`S3OutputLocation.Prefix`); see [`Greengrass::prefix_dir`].
    pub prefix: String,
    pub tags: Vec<(String, String)>,
}

impl Greengrass {
    /// LFV's rules: the component's name and version patterns, its description, the compiler options.
    pub fn check(&self) -> Result<(), InvalidConfig> {
        let invalid = |m: &str| Err(InvalidConfig(m.to_string()));
        if !valid_component_name(&self.component_name) {
            return Err(InvalidConfig(format!(
                "ComponentName {:?} must have 1-128 letters, digits, hyphens, underscores or periods.",
                self.component_name
            )));
        }
        if let Some(v) = self.component_version.as_deref().filter(|v| !valid_component_version(v)) {
            return Err(InvalidConfig(format!(
                "ComponentVersion {v:?} must be three numbers separated by periods (major.minor.patch, for example 1.0.0)."
            )));
        }
        if let Some(d) = &self.component_description {
            if !valid_description(d) {
                return invalid("ComponentDescription must have 1-256 letters, digits, spaces or -_.()':,;? characters.");
            }
        }
        if let Target::Device { device } = &self.target {
            if device != JETSON_XAVIER {
                return Err(InvalidConfig(format!("TargetDevice must be {JETSON_XAVIER}, not {device:?}.")));
            }
        }
        match (&self.target, self.compiler_options.as_deref()) {
            (Target::Device { .. }, Some(_)) => {
                return invalid("CompilerOptions can only be given with a TargetPlatform: remove CompilerOptions, or use TargetPlatform instead of TargetDevice.");
            }
            (_, Some(o)) if !(3..=1024).contains(&o.chars().count()) => {
                return invalid("CompilerOptions must have 3-1024 characters.");
            }
            (Target::Platform { nvidia: true, .. }, options) => {
                let missing: Vec<&str> = ["gpu-code", "trt-ver", "cuda-ver"].into_iter().filter(|k| !options.unwrap_or("").contains(k)).collect();
                if !missing.is_empty() {
                    return Err(InvalidConfig(format!(
                        "With Accelerator NVIDIA, CompilerOptions must give gpu-code, trt-ver and cuda-ver (missing: {}), for example \
                         {{\"gpu-code\": \"sm_75\", \"trt-ver\": \"7.1.3\", \"cuda-ver\": \"10.2\"}}.",
                        missing.join(", ")
                    )));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The prefix the files are written under: empty, or ending with `/`.
    pub fn prefix_dir(&self) -> String {
        if self.prefix.is_empty() || self.prefix.ends_with('/') {
            self.prefix.clone()
        } else {
            format!("{}/", self.prefix)
        }
    }

    /// `s3://bucket/prefix/`, the base of the recipe's artifact URIs.
    pub fn s3_prefix_uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix_dir())
    }
}

/// LFV's `ComponentDescription` and `ModelPackagingJobDescription`: 1–256 of `[a-zA-Z0-9-_. ()':,;?]`.
pub fn valid_description(s: &str) -> bool {
    (1..=256).contains(&s.chars().count()) && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_. ()':,;?".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(target: Target, options: Option<&str>) -> Greengrass {
        Greengrass {
            component_name: "cookies.model".into(),
            component_version: None,
            component_description: None,
            target,
            compiler_options: options.map(str::to_string),
            bucket: "b".into(),
            prefix: "edge".into(),
            tags: vec![],
        }
    }

    const X86: Target = Target::Platform { arch: Arch::X86_64, nvidia: false };
    const GPU: Target = Target::Platform { arch: Arch::X86_64, nvidia: true };

    #[test]
    fn lfv_rules() {
        let jetson = Target::Device { device: JETSON_XAVIER.into() };
        assert!(config(X86, None).check().is_ok());
        assert!(config(X86, Some(r#"{"mcpu": "core-avx2"}"#)).check().is_ok());
        assert!(config(jetson.clone(), None).check().is_ok());
        assert!(config(jetson, Some(r#"{"mcpu": "x"}"#)).check().is_err(), "options only with a platform");
        assert!(config(Target::Device { device: "jetson_nano".into() }, None).check().is_err());
        assert!(config(X86, Some("{}")).check().is_err(), "3 characters at least");
        assert!(config(GPU, None).check().is_err(), "NVIDIA needs its options");
        assert!(config(GPU, Some(r#"{"gpu-code": "sm_75"}"#)).check().is_err());
        assert!(config(GPU, Some(r#"{"gpu-code": "sm_75", "trt-ver": "7.1.3", "cuda-ver": "10.2"}"#)).check().is_ok());
        let mut c = config(X86, None);
        c.component_name = "a/b".into();
        assert!(c.check().is_err());
        let mut c = config(X86, None);
        c.component_version = Some("1.0".into());
        assert!(c.check().is_err());
        c.component_version = Some("2.1.0".into());
        assert!(c.check().is_ok());
        c.component_description = Some("bad <html>".into());
        assert!(c.check().is_err());
    }

    #[test]
    fn targets_and_prefixes() {
        let t = GPU.edge_target();
        assert_eq!((t.arch.as_str(), t.requested.as_str(), t.note.as_deref()), ("x86_64", "LINUX/X86_64/NVIDIA", Some(CPU_NOTE)));
        let t = Target::Platform { arch: Arch::Arm64, nvidia: false }.edge_target();
        assert_eq!((t.arch.as_str(), t.note), ("aarch64", None));
        let t = Target::Device { device: JETSON_XAVIER.into() }.edge_target();
        assert_eq!((t.arch.as_str(), t.note.as_deref()), ("aarch64", Some(CPU_NOTE)));
        let mut c = config(X86, None);
        assert_eq!(c.s3_prefix_uri(), "s3://b/edge/");
        c.prefix = "edge/".into();
        assert_eq!(c.prefix_dir(), "edge/");
        c.prefix = String::new();
        assert_eq!(c.s3_prefix_uri(), "s3://b/");
        let round: Greengrass = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(round, c);
    }
}
