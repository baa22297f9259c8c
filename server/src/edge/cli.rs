//! `vigil edge ...`: serve, package, install, list, remove.

use crate::config::EdgeCommand;

/// `vigil edge ...`.
pub async fn run(command: EdgeCommand) -> anyhow::Result<()> {
    match command {
        EdgeCommand::Serve(a) => super::serve::serve(a).await,
        EdgeCommand::Install(a) => {
            let settings = crate::s3::S3Settings::of_args(&a.s3);
            let source = super::store::Source::parse(&a.source, crate::s3::S3::connect(&settings)).await.map_err(anyhow::Error::msg)?;
            let backbone = a.backbone.clone();
            // The backbone file's SHA-256 refuses a package trained with another one now; without the file here
            // (installing on a machine that serves from elsewhere) StartModel still checks it when it loads.
            let sha = match tokio::task::spawn_blocking(move || super::store::file_sha256(&backbone)).await? {
                Ok(sha) => Some(sha),
                Err(e) => {
                    eprintln!("warning: the backbone file cannot be read ({e}); the package's backbone is checked when the model starts");
                    None
                }
            };
            let m = super::store::install(&a.dir.root, &source, a.start_on_boot, sha.as_deref()).await.map_err(anyhow::Error::msg)?;
            println!(
                "installed {} {} (model {} of project {}) into {}{}",
                m.component_name,
                m.component_version,
                m.model_version,
                m.project_name,
                super::store::models_dir(&a.dir.root).join(&m.component_name).display(),
                if a.start_on_boot { ", starting on boot" } else { "" }
            );
            Ok(())
        }
        EdgeCommand::Package(a) => {
            if !super::package::valid_component_name(&a.component) || !super::package::valid_component_version(&a.component_version) {
                anyhow::bail!("--component must be 1–128 of a-z A-Z 0-9 - _ . and --component-version x.y.z");
            }
            if !matches!(a.arch.as_str(), "x86_64" | "aarch64") {
                anyhow::bail!("--arch must be x86_64 or aarch64");
            }
            let model = std::fs::read(&a.model).map_err(|e| anyhow::anyhow!("{}: {e}", a.model.display()))?;
            let out = std::path::absolute(&a.out)?;
            let spec = super::package::Spec {
                component_name: a.component.clone(),
                component_version: a.component_version.clone(),
                component_description: None,
                model_arn: format!("arn:vigil:local:model/{}/{}", a.project, a.component),
                project_name: a.project.clone(),
                model_version: 1,
                threshold: None,
                target: super::package::Target { os: "linux".into(), arch: a.arch.clone(), requested: format!("vigil edge package --arch {}", a.arch), note: None },
                s3_prefix_uri: format!("file://{}/", out.display()),
            };
            std::fs::create_dir_all(&out)?;
            for (name, bytes) in super::package::build(&spec, &model).map_err(anyhow::Error::msg)? {
                std::fs::write(out.join(name), bytes)?;
            }
            println!("packaged {} {} into {}", a.component, a.component_version, out.display());
            Ok(())
        }
        EdgeCommand::List(d) => {
            for i in super::store::list(&d.root) {
                let m = &i.manifest;
                println!(
                    "{}\t{}\t{}\tproject {} model {}{}",
                    m.component_name,
                    m.component_version,
                    m.model_arn,
                    m.project_name,
                    m.model_version,
                    if i.settings.start_on_boot { "\tstart-on-boot" } else { "" }
                );
            }
            Ok(())
        }
        EdgeCommand::Remove { component, dir } => {
            super::store::remove(&dir.root, &component).map_err(anyhow::Error::msg)?;
            println!("removed {component}");
            Ok(())
        }
    }
}
