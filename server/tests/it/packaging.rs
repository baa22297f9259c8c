//! Model packaging through the official Rust client, against a real server and a real S3 server:
//! StartModelPackagingJob → SUCCEEDED → the four files of the package in the bucket (the manifest's SHA-256
//! matching the model file, a Greengrass recipe) → DescribeModelPackagingJob / ListModelPackagingJobs with paging;
//! LFV's error for every refused configuration, a duplicate JobName and a reused ClientToken; the jobs go with
//! their model version. On SQLite and PostgreSQL.
//!
//! The model version is a real model file (trained once per test binary on a few of the small cookie images)
//! inserted as a trained version, so no dataset import or training job runs here.

use crate::common::{self, Backend, Harness, S3Server};
use aws_sdk_lookoutvision as lfv;
use aws_sdk_lookoutvision::error::ProvideErrorMetadata;
use lfv::types::{
    GreengrassConfiguration, ModelPackagingConfiguration, ModelPackagingJobStatus, S3Location, Tag, TargetDevice, TargetPlatform,
    TargetPlatformArch, TargetPlatformOs,
};
use serde_json::{json, Value};
use std::time::Duration;
use vigil::edge::package::{self, MANIFEST_FILE, MODEL_FILE, RECIPE_JSON, RECIPE_YAML};

const OUT: &str = "vigil-edge";

/// A model file trained on 8 normal cookies (once for both backends).
static MODEL_FILE_BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

async fn model_file(backbone: std::sync::Arc<vigil::engine::Backbone>) -> Vec<u8> {
    tokio::task::spawn_blocking(move || {
        MODEL_FILE_BYTES
            .get_or_init(|| {
                use vigil::engine::{self, ImageSource, Sample, TrainOptions, TrainSet};
                let dir = common::repo_root().join("server/tests/fixtures/cookies-small");
                let sample = |kind: &str, n: u32| Sample {
                    id: format!("{kind}-{n}"),
                    image: ImageSource::File(dir.join(kind).join(format!("{kind}-{n}.jpg"))),
                    anomalous: kind == "anomaly",
                    mask: None,
                };
                let set = TrainSet {
                    train: (2..=9).map(|n| sample("normal", n)).collect(),
                    test: Some(vec![sample("normal", 12), sample("normal", 13), sample("anomaly", 8), sample("anomaly", 9)]),
                    labels: vec![],
                };
                let (model, _) = engine::train(&backbone, &set, &TrainOptions::default(), &mut |_| {}).unwrap();
                model.to_bytes().unwrap()
            })
            .clone()
    })
    .await
    .unwrap()
}

/// Inserts model version `version` of the project in `status`, with the model file when given.
async fn insert_version(state: &vigil::state::AppState, project: &str, version: i64, status: &str, file: Option<&[u8]>) {
    let (project_id,): (String,) =
        sqlx::query_as("select id from project where name = $1").bind(project).fetch_one(&state.db.pool).await.unwrap();
    let hash = file.map(|b| state.blobs.put(b).unwrap());
    let now = vigil::db::now_ms();
    sqlx::query(
        "insert into model_version (id, project_id, version, status, output_bucket, output_prefix, trained_threshold, threshold, \
         artifact_hash, created_at, updated_at) values ($1, $2, $3, $4, '', '', 0.5, 0.42, $5, $6, $6)",
    )
    .bind(hex::encode(rand::random::<[u8; 16]>()))
    .bind(&project_id)
    .bind(version)
    .bind(status)
    .bind(&hash)
    .bind(now)
    .execute(&state.db.pool)
    .await
    .unwrap();
    sqlx::query("update project set next_model_version = $1 where id = $2").bind(version + 1).bind(&project_id).execute(&state.db.pool).await.unwrap();
}

fn x86() -> TargetPlatform {
    TargetPlatform::builder().os(TargetPlatformOs::Linux).arch(TargetPlatformArch::X8664).build()
}

fn location(prefix: &str) -> S3Location {
    S3Location::builder().bucket(OUT).prefix(prefix).build()
}

async fn wait_job(c: &lfv::Client, project: &str, job: &str) -> lfv::types::ModelPackagingDescription {
    for _ in 0..600 {
        let d = c.describe_model_packaging_job().project_name(project).job_name(job).send().await.unwrap().model_packaging_description.unwrap();
        if !matches!(d.status(), Some(ModelPackagingJobStatus::Created | ModelPackagingJobStatus::Running)) {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the packaging job {job} never settled");
}

async fn get(s3: &S3Server, key: &str) -> Vec<u8> {
    let o = s3.client.get_object().bucket(OUT).key(key).send().await.unwrap_or_else(|e| panic!("{key}: {e:?}"));
    o.body.collect().await.unwrap().into_bytes().to_vec()
}

async fn keys(s3: &S3Server, prefix: &str) -> Vec<String> {
    let out = s3.client.list_objects_v2().bucket(OUT).prefix(prefix).send().await.unwrap();
    let mut keys: Vec<String> = out.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect();
    keys.sort();
    keys
}

/// A raw StartModelPackagingJob: `(status, x-amzn-errortype, message)`.
async fn start_raw(h: &Harness, body: Value) -> (u16, String, String) {
    let r = h.api("POST", "/projects/cookies/modelpackagingjobs", Some("application/json"), body.to_string().into_bytes()).await;
    let status = r.status().as_u16();
    let kind = r.headers().get("x-amzn-errortype").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let v: Value = r.json().await.unwrap();
    (status, kind, v["Message"].as_str().unwrap_or_default().to_string())
}

fn request(version: &str, greengrass: Value) -> Value {
    json!({ "ModelVersion": version, "Configuration": { "Greengrass": greengrass } })
}

fn greengrass(extra: Value) -> Value {
    let mut g = json!({ "ComponentName": "com.example.cookies", "S3OutputLocation": { "Bucket": OUT, "Prefix": "refused" },
        "TargetPlatform": { "Os": "LINUX", "Arch": "X86_64" } });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            g.as_object_mut().unwrap().remove(k);
        } else {
            g[k] = v.clone();
        }
    }
    g
}

async fn packaging_flow(backend: Backend) {
    let Some(s3) = S3Server::start().await else { return };
    s3.bucket(OUT);
    let Some(h) = Harness::start_with(backend, Some(&s3)).await else { return };
    let state = h.running.as_ref().unwrap().state.clone();
    let c = &h.client;
    c.create_project().project_name("cookies").send().await.unwrap();
    let file = model_file(state.backbone.clone()).await;
    insert_version(&state, "cookies", 1, "TRAINED", Some(&file)).await;
    insert_version(&state, "cookies", 2, "TRAINING", None).await;

    // No JobName: one is generated; a retried call (same ClientToken) starts one job.
    let start = || {
        c.start_model_packaging_job()
            .project_name("cookies")
            .model_version("1")
            .description("cookies for line 3")
            .client_token("package-once")
            .configuration(
                ModelPackagingConfiguration::builder()
                    .greengrass(
                        GreengrassConfiguration::builder()
                            .component_name("com.example.cookies")
                            .component_description("Cookie inspection (line 3)")
                            .target_platform(x86())
                            .s3_output_location(location("packages/cookies"))
                            .tags(Tag::builder().key("line").value("3").build())
                            .build(),
                    )
                    .build(),
            )
    };
    let first = start().send().await.unwrap().job_name.unwrap();
    let again = start().send().await.unwrap().job_name.unwrap();
    assert_eq!(first, again, "same token, same job");
    assert!(first.starts_with("cookies-1-") && first.len() <= 64, "{first}");
    let e = start().description("another description").send().await.unwrap_err().into_service_error();
    assert_eq!(e.code(), Some("ConflictException"), "a token reused with other parameters: {e:?}");

    let d = wait_job(c, "cookies", &first).await;
    assert_eq!(d.status(), Some(&ModelPackagingJobStatus::Succeeded), "{:?}", d.status_message());
    assert_eq!((d.project_name(), d.model_version(), d.model_packaging_method()), (Some("cookies"), Some("1"), Some("Greengrass")));
    assert_eq!(d.model_packaging_job_description(), Some("cookies for line 3"));
    assert!(d.creation_timestamp().is_some() && d.last_updated_timestamp().is_some());
    let g = d.model_packaging_configuration().unwrap().greengrass().unwrap();
    assert_eq!(g.component_version(), Some("1.0.0"), "ComponentVersion defaults to ModelVersion.0.0");
    assert_eq!(g.target_platform().unwrap().arch(), Some(&TargetPlatformArch::X8664));
    assert_eq!(g.s3_output_location().unwrap().prefix(), Some("packages/cookies"));
    assert_eq!(g.tags().len(), 1);
    let out = d.model_packaging_output_details().unwrap().greengrass().unwrap();
    assert_eq!(out.component_version_arn(), Some("arn:aws:greengrass:us-east-1:000000000000:components:com.example.cookies:versions:1.0.0"));
    assert_eq!((out.component_name(), out.component_version()), (Some("com.example.cookies"), Some("1.0.0")));

    // The four files, and nothing else (the write check's marker is gone).
    let files = keys(&s3, "packages/cookies/").await;
    let expected: Vec<String> = {
        let mut v: Vec<String> = package::FILES.iter().map(|f| format!("packages/cookies/{f}")).collect();
        v.sort();
        v
    };
    assert_eq!(files, expected);
    let model = get(&s3, &format!("packages/cookies/{MODEL_FILE}")).await;
    assert_eq!(model, file, "the model file is the version's model blob");
    let manifest = package::parse_manifest(&get(&s3, &format!("packages/cookies/{MANIFEST_FILE}")).await).unwrap();
    package::check_file(&manifest, MODEL_FILE, &model).unwrap();
    assert_eq!(manifest.files[MODEL_FILE].sha256, package::sha256_hex(&file));
    assert_eq!((manifest.component_name.as_str(), manifest.component_version.as_str()), ("com.example.cookies", "1.0.0"));
    assert_eq!(manifest.model_arn, "arn:aws:lookoutvision:us-east-1:000000000000:model/cookies/1");
    assert!((manifest.threshold - 0.42).abs() < 1e-6, "the saved threshold: {}", manifest.threshold);
    assert_eq!((manifest.target.arch.as_str(), manifest.target.note.clone()), ("x86_64", None));
    let recipe: Value = serde_json::from_slice(&get(&s3, &format!("packages/cookies/{RECIPE_JSON}")).await).unwrap();
    assert_eq!(recipe["RecipeFormatVersion"], "2020-01-25");
    assert_eq!(recipe["ComponentVersion"], "1.0.0");
    assert_eq!(recipe["ComponentDescription"], "Cookie inspection (line 3)");
    let uris: Vec<&str> = recipe["Manifests"][0]["Artifacts"].as_array().unwrap().iter().map(|a| a["URI"].as_str().unwrap()).collect();
    assert_eq!(uris, [format!("s3://{OUT}/packages/cookies/{MODEL_FILE}"), format!("s3://{OUT}/packages/cookies/{MANIFEST_FILE}")]);
    let yaml = String::from_utf8(get(&s3, &format!("packages/cookies/{RECIPE_YAML}")).await).unwrap();
    assert!(yaml.contains("RecipeFormatVersion: 2020-01-25") || yaml.contains("RecipeFormatVersion: '2020-01-25'"), "{yaml}");

    // A Jetson, named, with a version and no prefix: packaged for the CPU, and the message says so.
    let jetson = GreengrassConfiguration::builder()
        .component_name("com.example.cookies-jetson")
        .component_version("2.1.0")
        .target_device(TargetDevice::JetsonXavier)
        .s3_output_location(S3Location::builder().bucket(OUT).build())
        .build();
    let r = c
        .start_model_packaging_job()
        .project_name("cookies")
        .model_version("latest")
        .job_name("jetson-1")
        .configuration(ModelPackagingConfiguration::builder().greengrass(jetson.clone()).build())
        .send()
        .await;
    let e = r.unwrap_err().into_service_error();
    assert_eq!(e.code(), Some("ConflictException"), "latest is version 2, still training: {e:?}");
    assert!(e.message().unwrap().contains("TRAINING"), "{e:?}");
    let r = c
        .start_model_packaging_job()
        .project_name("cookies")
        .model_version("1")
        .job_name("jetson-1")
        .configuration(ModelPackagingConfiguration::builder().greengrass(jetson.clone()).build())
        .send()
        .await
        .unwrap();
    assert_eq!(r.job_name(), Some("jetson-1"));
    let d = wait_job(c, "cookies", "jetson-1").await;
    assert_eq!(d.status(), Some(&ModelPackagingJobStatus::Succeeded), "{:?}", d.status_message());
    assert!(d.status_message().unwrap().contains("the Vigil agent runs on the CPU"), "{:?}", d.status_message());
    let manifest = package::parse_manifest(&get(&s3, MANIFEST_FILE).await).unwrap();
    assert_eq!(manifest.target.arch, "aarch64");
    assert_eq!(manifest.target.requested, "jetson_xavier");
    assert!(manifest.target.note.is_some());
    assert_eq!(manifest.component_version, "2.1.0");

    // A duplicate JobName.
    let e = c
        .start_model_packaging_job()
        .project_name("cookies")
        .model_version("1")
        .job_name("jetson-1")
        .configuration(ModelPackagingConfiguration::builder().greengrass(jetson).build())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(e.code(), Some("ConflictException"), "{e:?}");

    // Listing, newest first, and paging.
    let all = c.list_model_packaging_jobs().project_name("cookies").send().await.unwrap();
    let names: Vec<&str> = all.model_packaging_jobs().iter().map(|j| j.job_name().unwrap()).collect();
    assert_eq!(names, ["jetson-1", first.as_str()]);
    let j = &all.model_packaging_jobs()[1];
    assert_eq!((j.model_version(), j.model_packaging_method(), j.status()), (Some("1"), Some("Greengrass"), Some(&ModelPackagingJobStatus::Succeeded)));
    assert_eq!(j.model_packaging_job_description(), Some("cookies for line 3"));
    assert!(all.next_token().is_none());
    let p1 = c.list_model_packaging_jobs().project_name("cookies").max_results(1).send().await.unwrap();
    assert_eq!(p1.model_packaging_jobs().len(), 1);
    assert_eq!(p1.model_packaging_jobs()[0].job_name(), Some("jetson-1"));
    let p2 = c.list_model_packaging_jobs().project_name("cookies").max_results(1).next_token(p1.next_token().unwrap()).send().await.unwrap();
    assert_eq!(p2.model_packaging_jobs()[0].job_name(), Some(first.as_str()));
    assert!(p2.next_token().is_none());
    let e = c.list_model_packaging_jobs().project_name("cookies").next_token("bm90LWEtdG9rZW4=").send().await.unwrap_err().into_service_error();
    assert!(e.is_validation_exception(), "{e:?}");
    let e = c.list_model_packaging_jobs().project_name("nope").send().await.unwrap_err().into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");
    let e = c.describe_model_packaging_job().project_name("cookies").job_name("no-such-job").send().await.unwrap_err().into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");

    // Refused configurations, each with LFV's error, nothing queued.
    let refused = [
        (request("1", greengrass(json!({ "TargetDevice": "jetson_xavier" }))), "ValidationException", "not both"),
        (request("1", greengrass(json!({ "TargetPlatform": null }))), "ValidationException", "TargetDevice"),
        (
            request("1", greengrass(json!({ "TargetPlatform": null, "TargetDevice": "jetson_xavier", "CompilerOptions": "{\"mcpu\": \"x\"}" }))),
            "ValidationException",
            "CompilerOptions",
        ),
        (request("1", greengrass(json!({ "TargetPlatform": { "Os": "LINUX", "Arch": "X86_64", "Accelerator": "NVIDIA" } }))), "ValidationException", "gpu-code"),
        (request("1", greengrass(json!({ "ComponentName": "bad name!" }))), "ValidationException", "ComponentName"),
        (request("1", greengrass(json!({ "ComponentVersion": "1.0" }))), "ValidationException", "ComponentVersion"),
        (request("1", greengrass(json!({ "S3OutputLocation": null }))), "ValidationException", "S3OutputLocation"),
        (request("9", greengrass(json!({}))), "ResourceNotFoundException", "no model version 9"),
        (request("2", greengrass(json!({}))), "ConflictException", "TRAINING"),
        (
            request("1", greengrass(json!({ "S3OutputLocation": { "Bucket": "no-such-bucket" } }))),
            "ValidationException",
            "no-such-bucket",
        ),
        (json!({ "ModelVersion": "1", "Configuration": {} }), "ValidationException", "Greengrass"),
    ];
    for (body, kind, says) in refused {
        let (status, got, message) = start_raw(&h, body.clone()).await;
        assert_eq!(got, kind, "{body}: {message}");
        assert_eq!(status, match kind { "ValidationException" => 400, "ResourceNotFoundException" => 404, _ => 409 }, "{body}");
        assert!(message.contains(says), "{body}: {message}");
    }
    assert!(keys(&s3, "refused").await.is_empty(), "a refused call writes nothing");
    let listed = c.list_model_packaging_jobs().project_name("cookies").send().await.unwrap();
    assert_eq!(listed.model_packaging_jobs().len(), 2, "nothing was queued by the refused calls");

    // The jobs go with their model version.
    c.delete_model().project_name("cookies").model_version("1").send().await.unwrap();
    let listed = c.list_model_packaging_jobs().project_name("cookies").send().await.unwrap();
    assert!(listed.model_packaging_jobs().is_empty());
    let (left,): (i64,) = sqlx::query_as("select count(*) from model_packaging_job").fetch_one(&state.db.pool).await.unwrap();
    assert_eq!(left, 0);
    h.stop().await;
}

#[tokio::test]
async fn packaging_on_sqlite() {
    packaging_flow(Backend::Sqlite).await;
}

#[tokio::test]
async fn packaging_on_postgres() {
    packaging_flow(Backend::Postgres).await;
}

/// Polls the console's job list until `job` has settled.
async fn wait_console_job(console: &vigil::console::packaging::ConsolePackaging, job: &str) -> app::api::packaging::PackagingJobView {
    use app::api::packaging::PackagingBackend;
    for _ in 0..600 {
        let jobs = console.jobs("cookies").await.unwrap();
        let j = jobs.into_iter().find(|j| j.job_name == job).unwrap_or_else(|| panic!("{job} is not listed"));
        if !j.unfinished() {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the packaging job {job} never settled");
}

/// The console's half: a job started through the console's backend (the form's fields, the server's refusals in
/// the console's words), listed through the server function, and its package downloaded as a ZIP through the
/// session-authenticated console route: the four files, the model file being the version's blob and matching the
/// manifest's SHA-256, the recipes those the job wrote to S3; a missing job or project is a 404, no session a 401
/// (or the sign-in redirect).
#[tokio::test]
async fn packaging_from_the_console() {
    use app::api::packaging::{download_path, PackageRequest, PackagingBackend};
    use std::io::Read;
    let Some(s3) = S3Server::start().await else { return };
    s3.bucket(OUT);
    let Some(h) = Harness::start_with(Backend::Sqlite, Some(&s3)).await else { return };
    let state = h.running.as_ref().unwrap().state.clone();
    h.client.create_project().project_name("cookies").send().await.unwrap();
    let file = model_file(state.backbone.clone()).await;
    insert_version(&state, "cookies", 1, "TRAINED", Some(&file)).await;
    insert_version(&state, "cookies", 2, "TRAINING", None).await;
    let console = vigil::console::packaging::ConsolePackaging { state: state.clone() };

    let form = PackageRequest {
        job_name: "edge-1".into(),
        description: "from the console".into(),
        component_name: "com.example.cookies".into(),
        component_description: "Cookie inspection".into(),
        target: "ARM64".into(),
        accelerator: "NVIDIA".into(),
        compiler_options: r#"{"gpu-code": "sm_72", "trt-ver": "8.2.1", "cuda-ver": "10.2"}"#.into(),
        bucket: OUT.into(),
        prefix: "console/cookies".into(),
        ..Default::default()
    };
    // Refusals, each in words the form can show, nothing queued.
    let refused = [
        (2, form.clone(), 409, "TRAINING"),
        (9, form.clone(), 404, "no model version 9"),
        (1, PackageRequest { compiler_options: String::new(), ..form.clone() }, 400, "gpu-code"),
        (1, PackageRequest { component_name: String::new(), ..form.clone() }, 400, "name"),
        (1, PackageRequest { target: "jetson_xavier".into(), accelerator: String::new(), ..form.clone() }, 400, "CompilerOptions"),
        (1, PackageRequest { bucket: "no-such-bucket".into(), ..form.clone() }, 400, "no-such-bucket"),
    ];
    for (version, f, status, says) in refused {
        let e = console.start("cookies", version, f.clone()).await.unwrap_err();
        assert_eq!(e.status, status, "{f:?}: {}", e.message);
        assert!(e.message.contains(says), "{f:?}: {}", e.message);
    }
    assert!(console.jobs("cookies").await.unwrap().is_empty());
    assert_eq!(console.jobs("nope").await.unwrap_err().status, 404);

    assert_eq!(console.start("cookies", 1, form.clone()).await.unwrap(), "edge-1");
    let e = console.start("cookies", 1, form.clone()).await.unwrap_err();
    assert_eq!(e.status, 409, "a duplicate job name: {}", e.message);
    let j = wait_console_job(&console, "edge-1").await;
    assert_eq!(j.status, "SUCCEEDED", "{:?}", j.status_message);
    assert_eq!((j.model_version, j.component_name.as_str(), j.component_version.as_deref()), (1, "com.example.cookies", Some("1.0.0")));
    assert_eq!((j.target.as_str(), j.output.as_str(), j.description.as_deref()), ("Linux ARM64 + NVIDIA", "s3://vigil-edge/console/cookies/", Some("from the console")));
    assert!(j.component_arn.as_deref().unwrap().ends_with(":components:com.example.cookies:versions:1.0.0"));
    let href = j.download("cookies").unwrap();
    assert_eq!(href, download_path("cookies", "edge-1"));

    // The list through the server function, with the session.
    let r = h.http()
        .post(format!("{}{}", h.base, <app::api::packaging::ListPackagingJobs as leptos::server_fn::ServerFn>::PATH))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("project=cookies")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let listed: Value = r.json().await.unwrap();
    assert_eq!(listed[0]["job_name"], "edge-1");
    assert_eq!(listed[0]["status"], "SUCCEEDED");

    // The download: a ZIP of the four files, named after the component and its version.
    let r = h.http().get(format!("{}{href}", h.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/zip");
    assert_eq!(r.headers()["content-disposition"], "attachment; filename=\"com.example.cookies-1.0.0.zip\"");
    let body = r.bytes().await.unwrap().to_vec();
    // `vigil edge install PACKAGE.zip` takes the download as it is.
    let unpacked = tempfile::tempdir().unwrap();
    let zip_path = unpacked.path().join("package.zip");
    std::fs::write(&zip_path, &body).unwrap();
    let source = vigil::edge::store::Source::parse(zip_path.to_str().unwrap(), async { unreachable!("no S3 for a ZIP") }).await.unwrap();
    let installed = vigil::edge::store::install(&unpacked.path().join("agent"), &source, false, None).await.unwrap();
    assert_eq!(installed.component_name, "com.example.cookies");
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(body)).unwrap();
    let mut names: Vec<String> = zip.file_names().map(str::to_string).collect();
    names.sort();
    let mut expected: Vec<String> = package::FILES.iter().map(|f| f.to_string()).collect();
    expected.sort();
    assert_eq!(names, expected);
    let mut read = |name: &str| {
        let mut out = Vec::new();
        zip.by_name(name).unwrap().read_to_end(&mut out).unwrap();
        out
    };
    let model = read(MODEL_FILE);
    assert_eq!(model, file, "the model file is the version's model blob");
    let manifest = package::parse_manifest(&read(MANIFEST_FILE)).unwrap();
    assert_eq!(manifest.files[MODEL_FILE].sha256, package::sha256_hex(&model));
    package::check_file(&manifest, MODEL_FILE, &model).unwrap();
    assert_eq!(manifest.target.requested, "LINUX/ARM64/NVIDIA");
    let recipe_json = read(RECIPE_JSON);
    let recipe: Value = serde_json::from_slice(&recipe_json).unwrap();
    assert_eq!((recipe["ComponentName"].as_str(), recipe["ComponentVersion"].as_str()), (Some("com.example.cookies"), Some("1.0.0")));
    assert_eq!(recipe_json, get(&s3, &format!("console/cookies/{RECIPE_JSON}")).await, "the recipe the job wrote to S3");
    assert_eq!(read(RECIPE_YAML), get(&s3, &format!("console/cookies/{RECIPE_YAML}")).await);
    assert_eq!(read(MANIFEST_FILE), get(&s3, &format!("console/cookies/{MANIFEST_FILE}")).await);

    // A job or project that does not exist, a path that is no ZIP or no job name: 404, and nothing read from disk.
    for path in ["/packages/cookies/no-such-job.zip", "/packages/nope/edge-1.zip", "/packages/cookies/edge-1", "/packages/cookies/..%2F..%2Fvigil.db.zip"] {
        let r = h.http().get(format!("{}{path}", h.base)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    // Without a session: 401, as every file route (no redirect to a page).
    let anon = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = anon.get(format!("{}{href}", h.base)).send().await.unwrap();
    assert_eq!(r.status(), 401, "a download without a session");
    h.stop().await;
}
