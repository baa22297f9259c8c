//! Model versions and hosting through the official Rust client, against a real server and a real S3 server:
//! datasets from manifests → CreateModel → TRAINED → evaluation files in the bucket → tags → StartModel →
//! DetectAnomalies → StopModel → DeleteModel, with LFV's error for every wrong call; on SQLite and PostgreSQL.
//! Also the job worker's claim on PostgreSQL (two workers, many jobs, no double claim).

use crate::common;
#[path = "models/trials.rs"]
mod trials;

use aws_sdk_lookoutvision as lfv;
use aws_sdk_lookoutvision::error::ProvideErrorMetadata;
use aws_sdk_lookoutvision::primitives::{Blob, ByteStream};
use aws_sdk_lookoutvision::types::{
    DatasetGroundTruthManifest, DatasetSource, DatasetStatus, InputS3Object, ModelStatus, OutputConfig, S3Location, Tag,
};
use common::{Backend, Harness, S3Server};
use std::time::Duration;

pub(crate) const DATA: &str = "vigil-data";
pub(crate) const OUT: &str = "vigil-out";

pub(crate) fn small(path: &str) -> Vec<u8> {
    std::fs::read(common::repo_root().join("server/tests/fixtures/cookies-small").join(path)).unwrap()
}

pub(crate) fn line(key: &str, anomalous: bool, mask: Option<&str>) -> String {
    let class = if anomalous { "anomaly" } else { "normal" };
    let mut v = serde_json::json!({
        "source-ref": format!("s3://{DATA}/{key}"),
        "anomaly-label": if anomalous { 1 } else { 0 },
        "anomaly-label-metadata": {"class-name": class, "confidence": 1, "creation-date": "2024-01-01T00:00:00.000",
            "human-annotated": "yes", "job-name": "labeling-job/x", "type": "groundtruth/image-classification"},
    });
    if let Some(m) = mask {
        v["anomaly-mask-ref"] = serde_json::json!(format!("s3://{DATA}/{m}"));
        v["anomaly-mask-ref-metadata"] = serde_json::json!({
            "internal-color-map": {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff", "confidence": 0},
                                   "1": {"class-name": "cracked", "hex-color": "#23a436", "confidence": 0}},
            "type": "groundtruth/semantic-segmentation", "human-annotated": "yes",
            "creation-date": "2024-01-01T00:00:00.000", "job-name": "labeling-job/x"});
    }
    v.to_string()
}

/// Train: normal-2..9 and anomaly-2..5 with masks; test: normal-10..13 and anomaly-6..9 with masks.
pub(crate) async fn stage(s3: &S3Server) {
    s3.bucket(DATA);
    s3.bucket(OUT);
    let mut train = String::new();
    let mut test = String::new();
    for i in 2..=13 {
        let key = format!("normal/normal-{i}.jpg");
        s3.put(DATA, &key, small(&key)).await;
        let l = line(&key, false, None);
        if i <= 9 { train += &l } else { test += &l }
        if i <= 9 { train.push('\n') } else { test.push('\n') }
    }
    for i in 2..=9 {
        let key = format!("anomaly/anomaly-{i}.jpg");
        let mask = format!("masks/anomaly-{i}.png");
        s3.put(DATA, &key, small(&key)).await;
        s3.put(DATA, &mask, small(&mask)).await;
        let l = line(&key, true, Some(&mask));
        if i <= 5 { train += &l } else { test += &l }
        if i <= 5 { train.push('\n') } else { test.push('\n') }
    }
    s3.put(DATA, "train.manifest", train.into_bytes()).await;
    s3.put(DATA, "test.manifest", test.into_bytes()).await;
}

pub(crate) fn manifest(key: &str) -> DatasetSource {
    DatasetSource::builder()
        .ground_truth_manifest(DatasetGroundTruthManifest::builder().s3_object(InputS3Object::builder().bucket(DATA).key(key).build()).build())
        .build()
}

pub(crate) fn output(bucket: &str) -> OutputConfig {
    OutputConfig::builder().s3_location(S3Location::builder().bucket(bucket).prefix("evaluations/").build()).build()
}

pub(crate) async fn settle_dataset(c: &lfv::Client, project: &str, t: &str) {
    for _ in 0..600 {
        let d = c.describe_dataset().project_name(project).dataset_type(t).send().await.unwrap().dataset_description.unwrap();
        match d.status() {
            Some(DatasetStatus::CreateInProgress | DatasetStatus::UpdateInProgress) => tokio::time::sleep(Duration::from_millis(100)).await,
            Some(DatasetStatus::CreateComplete) => return,
            other => panic!("dataset {t}: {other:?} {:?}", d.status_message()),
        }
    }
    panic!("the dataset never settled");
}

/// Polls DescribeModel while the status is one of `passing`.
pub(crate) async fn wait_model(c: &lfv::Client, project: &str, version: &str, passing: &[ModelStatus]) -> lfv::types::ModelDescription {
    for _ in 0..1200 {
        let d = c.describe_model().project_name(project).model_version(version).send().await.unwrap().model_description.unwrap();
        if !passing.contains(d.status().unwrap()) {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("model {version} stayed in {passing:?}");
}

fn code<E: ProvideErrorMetadata>(e: E) -> String {
    e.code().unwrap_or("?").to_string()
}

async fn model_flow(backend: Backend) {
    let Some(s3) = S3Server::start().await else { return };
    stage(&s3).await;
    let Some(h) = Harness::start_with(backend, Some(&s3)).await else { return };
    let c = &h.client;
    c.create_project().project_name("cookies").send().await.unwrap();

    // Readiness: no training dataset yet.
    let e = c.create_model().project_name("cookies").output_config(output(OUT)).send().await.unwrap_err().into_service_error();
    assert!(e.is_validation_exception(), "{e:?}");
    assert!(e.message().unwrap().contains("no training dataset"), "{e:?}");
    let e = c.create_model().project_name("nope").output_config(output(OUT)).send().await.unwrap_err().into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");

    c.create_dataset().project_name("cookies").dataset_type("train").dataset_source(manifest("train.manifest")).send().await.unwrap();
    c.create_dataset().project_name("cookies").dataset_type("test").dataset_source(manifest("test.manifest")).send().await.unwrap();
    settle_dataset(c, "cookies", "train").await;
    settle_dataset(c, "cookies", "test").await;

    // A retried CreateModel (same client token) trains once.
    let create = || {
        c.create_model()
            .project_name("cookies")
            .description("first")
            .output_config(output(OUT))
            .kms_key_id("alias/vigil-test")
            .tags(Tag::builder().key("line").value("3").build())
            .client_token("train-once")
    };
    let a = create().send().await.unwrap().model_metadata.unwrap();
    let b = create().send().await.unwrap().model_metadata.unwrap();
    assert_eq!(a.model_version(), Some("1"));
    assert_eq!(a, b, "same token, same answer, one version");
    assert_eq!(a.status(), Some(&ModelStatus::Training));
    assert_eq!(a.model_arn(), Some("arn:aws:lookoutvision:us-east-1:000000000000:model/cookies/1"));

    // A second version whose output bucket does not exist fails with a message naming it.
    let v2 = c.create_model().project_name("cookies").output_config(output("no-such-bucket")).send().await.unwrap().model_metadata.unwrap();
    assert_eq!(v2.model_version(), Some("2"));

    let d = wait_model(c, "cookies", "1", &[ModelStatus::Training]).await;
    assert_eq!(d.status(), Some(&ModelStatus::Trained), "{:?}", d.status_message());
    let perf = d.performance().unwrap();
    for v in [perf.f1_score, perf.precision, perf.recall] {
        let v = v.unwrap();
        assert!((0.0..=1.0).contains(&v), "{perf:?}");
    }
    assert_eq!(d.kms_key_id(), Some("alias/vigil-test"));
    assert_eq!(d.description(), Some("first"));
    assert!(d.evaluation_end_timestamp().is_some());
    let man = d.evaluation_manifest().unwrap();
    let res = d.evaluation_result().unwrap();
    assert_eq!(man.bucket(), Some(OUT));
    let (man_key, res_key) = (man.key().unwrap().to_string(), res.key().unwrap().to_string());
    assert!(man_key.starts_with("evaluations/cookies/"), "{man_key}");
    let s3c = s3.client.clone();
    let get = |key: String| {
        let s3c = s3c.clone();
        async move {
        let o = s3c.get_object().bucket(OUT).key(&key).send().await.unwrap_or_else(|e| panic!("{key}: {e:?}"));
        o.body.collect().await.unwrap().into_bytes().to_vec()
        }
    };
    let manifest_text = String::from_utf8(get(man_key.clone()).await).unwrap();
    let evaluated: Vec<serde_json::Value> = manifest_text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(evaluated.len(), 8, "one line per test image");
    let result: serde_json::Value = serde_json::from_slice(&get(res_key.clone()).await).unwrap();
    let metrics = &result["AggregatedEvaluationResults"]["Metrics"];
    assert!((metrics["F1Score"].as_f64().unwrap() - perf.f1_score.unwrap() as f64).abs() < 1e-6, "{metrics}");
    assert!(metrics["ROCAUC"].as_f64().is_some(), "{metrics}");
    assert_eq!(metrics["PixelAnomalyClassMetrics"][0]["ClassName"], "cracked");

    let d2 = wait_model(c, "cookies", "2", &[ModelStatus::Training]).await;
    assert_eq!(d2.status(), Some(&ModelStatus::TrainingFailed));
    assert!(d2.status_message().unwrap().contains("no-such-bucket"), "{:?}", d2.status_message());

    // latest, listing and paging.
    let latest = c.describe_model().project_name("cookies").model_version("latest").send().await.unwrap();
    assert_eq!(latest.model_description.unwrap().model_version(), Some("2"));
    let p1 = c.list_models().project_name("cookies").max_results(1).send().await.unwrap();
    assert_eq!(p1.models().len(), 1);
    assert_eq!(p1.models()[0].model_version(), Some("2"));
    let p2 = c.list_models().project_name("cookies").max_results(1).next_token(p1.next_token().unwrap()).send().await.unwrap();
    assert_eq!(p2.models()[0].model_version(), Some("1"));
    assert!(p2.models()[0].performance().is_some());
    assert!(p2.next_token().is_none());
    let e = c.describe_model().project_name("cookies").model_version("9").send().await.unwrap_err().into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");
    let e = c.describe_model().project_name("cookies").model_version("x1").send().await.unwrap_err().into_service_error();
    assert!(e.is_validation_exception(), "{e:?}");

    // Tags on the model ARN (percent-encoded in the path; repeated tagKeys).
    let arn = a.model_arn().unwrap().to_string();
    let tags = |t: &[(&str, &str)]| t.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect::<Vec<_>>();
    c.tag_resource().resource_arn(&arn).set_tags(Some(tags(&[("owner", "qa"), ("cell", "A 1")]))).send().await.unwrap();
    let listed = c.list_tags_for_resource().resource_arn(&arn).send().await.unwrap();
    let mut got: Vec<(String, String)> = listed.tags().iter().map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string())).collect();
    got.sort();
    assert_eq!(got, vec![("cell".into(), "A 1".into()), ("line".into(), "3".into()), ("owner".into(), "qa".into())]);
    c.untag_resource().resource_arn(&arn).tag_keys("owner").tag_keys("cell").send().await.unwrap();
    let listed = c.list_tags_for_resource().resource_arn(&arn).send().await.unwrap();
    assert_eq!(listed.tags().len(), 1);
    let e = c.tag_resource().resource_arn(&arn).set_tags(Some(tags(&[("aws:x", "y")]))).send().await.unwrap_err().into_service_error();
    assert!(e.is_validation_exception(), "{e:?}");
    let e = c.list_tags_for_resource().resource_arn(arn.replace("/1", "/7")).send().await.unwrap_err().into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");

    // Detection needs a hosted model.
    let img = small("anomaly/anomaly-6.jpg");
    let e = c.detect_anomalies().project_name("cookies").model_version("1").content_type("image/jpeg").body(ByteStream::from(img.clone())).send().await.unwrap_err();
    assert_eq!(code(e.into_service_error()), "ConflictException");
    let e = c.start_model().project_name("cookies").model_version("2").min_inference_units(1).send().await.unwrap_err().into_service_error();
    assert!(e.is_conflict_exception(), "a failed training cannot be hosted: {e:?}");
    let e = c.start_model().project_name("cookies").model_version("1").min_inference_units(0).send().await.unwrap_err().into_service_error();
    assert!(e.is_validation_exception(), "{e:?}");

    let s = c.start_model().project_name("cookies").model_version("1").min_inference_units(1).max_inference_units(2).send().await.unwrap();
    assert_eq!(s.status(), Some(&lfv::types::ModelHostingStatus::StartingHosting));
    let d = wait_model(c, "cookies", "1", &[ModelStatus::StartingHosting]).await;
    assert_eq!(d.status(), Some(&ModelStatus::Hosted), "{:?}", d.status_message());
    assert_eq!((d.min_inference_units(), d.max_inference_units()), (Some(1), Some(2)));

    // Every test image: the verdict and confidence agree with the evaluation of the same model.
    let mut flagged = 0;
    for e in &evaluated {
        let key = e["source-ref"].as_str().unwrap().trim_start_matches(&format!("s3://{DATA}/")).to_string();
        let r = c
            .detect_anomalies()
            .project_name("cookies")
            .model_version("1")
            .content_type("image/jpeg")
            .body(ByteStream::from(small(&key)))
            .send()
            .await
            .unwrap()
            .detect_anomaly_result
            .unwrap();
        let predicted = e["anomaly-label-detected-metadata"]["class-name"] == "anomaly";
        assert_eq!(r.is_anomalous(), Some(predicted), "{key}");
        flagged += predicted as usize;
        let conf = e["anomaly-label-detected-metadata"]["confidence"].as_f64().unwrap();
        assert!((r.confidence().unwrap() as f64 - conf).abs() < 1e-3, "{key}: {:?} vs {conf}", r.confidence());
        assert_eq!(r.source().unwrap().r#type(), Some("direct"));
        let anomalies = r.anomalies();
        assert_eq!(anomalies[0].name(), Some("background"), "segmentation models list background first");
        let mask = r.anomaly_mask().unwrap().as_ref();
        assert_eq!(&mask[..8], b"\x89PNG\r\n\x1a\n");
    }
    // Bad input, each with LFV's error.
    let detect = |ct: &str, body: Vec<u8>| c.detect_anomalies().project_name("cookies").model_version("1").content_type(ct).body(ByteStream::from(body)).send();
    assert_eq!(code(detect("image/gif", img.clone()).await.unwrap_err().into_service_error()), "ValidationException");
    assert_eq!(code(detect("image/jpeg", b"not an image".to_vec()).await.unwrap_err().into_service_error()), "ValidationException");
    assert_eq!(code(detect("image/png", vec![0u8; 9 * 1024 * 1024]).await.unwrap_err().into_service_error()), "ValidationException");
    let tiny = {
        let mut out = Vec::new();
        image::RgbImage::new(32, 32).write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
        out
    };
    assert_eq!(code(detect("image/png", tiny).await.unwrap_err().into_service_error()), "ValidationException");

    // A burst far beyond the queue (8 per unit, 2 units): every call answers a result or ThrottlingException
    // (429 with Retry-After), never a server error.
    let burst: Vec<_> = (0..48).map(|_| h.api("POST", "/projects/cookies/models/1/detect", Some("image/jpeg"), img.clone())).collect();
    let (mut ok, mut throttled) = (0u64, 0u64);
    for r in futures::future::join_all(burst).await {
        match r.status().as_u16() {
            200 => ok += 1,
            429 => {
                assert_eq!(r.headers()["x-amzn-errortype"], "ThrottlingException");
                assert!(r.headers().contains_key("retry-after"));
                throttled += 1;
            }
            other => panic!("a burst of detections answered {other}: {}", r.text().await.unwrap()),
        }
    }
    assert_eq!(ok + throttled, 48);
    assert!(ok >= 16, "at least a full queue is served: {ok}");
    let anomalous_in_burst = if c.detect_anomalies().project_name("cookies").model_version("1").content_type("image/jpeg").body(ByteStream::from(img.clone())).send().await.unwrap().detect_anomaly_result.unwrap().is_anomalous().unwrap() { ok + 1 } else { 0 };

    // The counts, as Prometheus reads them (a scraper's token, or a console session) and on the dashboard.
    let metrics_url = format!("{}/metrics", h.base);
    assert_eq!(reqwest::get(&metrics_url).await.unwrap().status(), 401, "/metrics needs a token or a session");
    let wrong = reqwest::Client::new().get(&metrics_url).bearer_auth("not-the-token-at-all").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let text = reqwest::Client::new().get(&metrics_url).bearer_auth(common::METRICS_TOKEN).send().await.unwrap().text().await.unwrap();
    let sample = |name: &str| -> u64 {
        let prefix = format!("lookoutvision_{name}{{ProjectName=\"cookies\",ModelVersion=\"1\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("no {name} in {text}")).parse::<f64>().unwrap() as u64
    };
    let mut processed = evaluated.len() as u64 + ok + 1;
    assert_eq!(sample("ProcessedImageCount"), processed, "{text}");
    assert_eq!(sample("DetectedAnomalyCount"), flagged as u64 + anomalous_in_burst, "{text}");
    assert_eq!(sample("InvalidImageCount"), 4, "gif, not an image, too large, too small: {text}");
    assert_eq!(sample("ThrottledCount"), throttled, "{text}");
    assert_eq!(sample("ErrorCount"), 0, "{text}");
    assert_eq!(sample("MaxInferenceUnits"), 2);
    assert!((1..=2).contains(&sample("InServiceInferenceUnits")));
    let session_view = h.http().get(&metrics_url).send().await.unwrap();
    assert_eq!(session_view.status(), 200);
    use app::api::models::ModelBackend;
    let console = vigil::console::models::ConsoleModels { state: h.running.as_ref().unwrap().state.clone() };
    let dash = console.dashboard(24).await.unwrap();
    let cookies = dash.projects.iter().find(|p| p.project == "cookies").unwrap();
    assert_eq!(cookies.processed as u64, processed);
    assert_eq!(cookies.series.iter().map(|(n, _)| *n as u64).sum::<u64>(), processed);
    assert_eq!(dash.hosted, 1);
    assert!(console.dashboard(5).await.is_err(), "only the offered time frames");

    // Trials and batches on this model; the batches' detections count like any other.
    let verdicts: std::collections::HashMap<String, bool> = evaluated
        .iter()
        .map(|e| (e["source-ref"].as_str().unwrap().to_string(), e["anomaly-label-detected-metadata"]["class-name"] == "anomaly"))
        .collect();
    processed += trials::trials_and_batches(&h, &s3, &verdicts).await;

    // The same model packaged and run by the edge agent answers as the server does (the agent's detections
    // are its own: the server's counts above are unchanged by them, except for its own DetectAnomalies).
    if matches!(backend, Backend::Sqlite) {
        let images: Vec<(String, Vec<u8>)> =
            ["anomaly/anomaly-6.jpg", "anomaly/anomaly-7.jpg", "normal/normal-10.jpg"].iter().map(|k| (k.to_string(), small(k))).collect();
        crate::edge::agent_flow(&h, &s3, OUT, "cookies", &images).await;
        processed += images.len() as u64;
    }

    // Hosted models and projects with models refuse deletion.
    let e = c.delete_model().project_name("cookies").model_version("1").send().await.unwrap_err().into_service_error();
    assert!(e.is_conflict_exception(), "{e:?}");
    let e = c.delete_project().project_name("cookies").send().await.unwrap_err().into_service_error();
    assert!(e.is_conflict_exception(), "{e:?}");

    let s = c.stop_model().project_name("cookies").model_version("1").send().await.unwrap();
    assert_eq!(s.status(), Some(&lfv::types::ModelHostingStatus::StoppingHosting));
    let d = wait_model(c, "cookies", "1", &[ModelStatus::StoppingHosting]).await;
    assert_eq!(d.status(), Some(&ModelStatus::Trained));
    // A stopped model's last counts are written; the dashboard keeps them.
    let dash = console.dashboard(24 * 7).await.unwrap();
    assert_eq!(dash.projects.iter().find(|p| p.project == "cookies").unwrap().processed as u64, processed);
    assert_eq!(dash.hosted, 0);
    let e = c.detect_anomalies().project_name("cookies").model_version("1").content_type("image/jpeg").body(ByteStream::from(img)).send().await.unwrap_err();
    assert_eq!(code(e.into_service_error()), "ConflictException");

    for v in ["1", "2"] {
        let r = c.delete_model().project_name("cookies").model_version(v).send().await.unwrap();
        assert!(r.model_arn().unwrap().ends_with(&format!("model/cookies/{v}")));
    }
    let e = c.describe_model().project_name("cookies").model_version("1").send().await.unwrap_err().into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");
    // Versions are never reused.
    let _ = Blob::new(Vec::new());
    h.stop().await;
}

#[tokio::test]
async fn model_lifecycle_on_sqlite() {
    model_flow(Backend::Sqlite).await;
}

#[tokio::test]
async fn model_lifecycle_on_postgres() {
    model_flow(Backend::Postgres).await;
}

/// Two workers claiming from one PostgreSQL queue never claim the same job, and every job is claimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_never_claim_a_job_twice() {
    let Some(h) = Harness::start(Backend::Postgres).await else { return };
    let db = h.running.as_ref().unwrap().state.db.clone();
    let n = 60;
    {
        let mut conn = db.pool.acquire().await.unwrap();
        for i in 0..n {
            // Jobs of a lane no worker of the server runs, so only this test claims them.
            sqlx::query("insert into job (id, dataset_id, spec, attempts, kind, created_at, updated_at) values ($1, 'x', '{}', 0, 'test', $2, $2)")
                .bind(format!("job-{i:03}"))
                .bind(i as i64)
                .execute(&mut *conn)
                .await
                .unwrap();
        }
    }
    let claimer = |owner: &'static str| {
        let db = db.clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(c) = vigil::jobs::claim_kind(&db, owner, "test", 60_000).await.unwrap() {
                got.push(c.id);
            }
            got
        })
    };
    let (a, b) = (claimer("worker-a"), claimer("worker-b"));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let mut all: Vec<String> = a.iter().chain(b.iter()).cloned().collect();
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(before, all.len(), "a job was claimed twice");
    assert_eq!(all.len(), n, "every job was claimed once");
    assert!(!a.is_empty() && !b.is_empty(), "both workers claimed jobs ({} / {})", a.len(), b.len());

    // An expired lease makes a job claimable again, with its attempt counted.
    sqlx::query("update job set lease_until = 0 where id = 'job-000'").execute(&db.pool).await.unwrap();
    let again = vigil::jobs::claim_kind(&db, "worker-c", "test", 60_000).await.unwrap().unwrap();
    assert_eq!((again.id.as_str(), again.attempts), ("job-000", 2));
    h.stop().await;
}

/// A `vigil serve` process of its own (the real binary), so that a test can kill it with SIGKILL.
struct Process {
    child: std::process::Child,
    base: String,
}

fn serve(dir: &std::path::Path, s3: &S3Server, port: u16) -> Process {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log")).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("serve")
        .current_dir(common::repo_root())
        .env("VIGIL_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", format!("sqlite://{}", dir.join("vigil.db").display()))
        .env("VIGIL_DATA_DIR", dir.join("data"))
        .env("VIGIL_BACKBONE", common::backbone_path())
        .env("VIGIL_TORCH_THREADS", "1")
        .env("VIGIL_ACCESS_KEY_ID", common::API_KEY)
        .env("VIGIL_SECRET_ACCESS_KEY", common::API_SECRET)
        .env("VIGIL_ADMIN_PASSWORD", common::ADMIN_PASSWORD)
        .env("VIGIL_S3_ENDPOINT", &s3.endpoint)
        .env("VIGIL_S3_ACCESS_KEY_ID", common::S3_KEY)
        .env("VIGIL_S3_SECRET_ACCESS_KEY", common::S3_SECRET)
        .env("VIGIL_S3_REGION", "us-east-1")
        // A dead worker's job is taken up again 2 s after its last renewal.
        .env("VIGIL_JOB_LEASE_SECS", "2")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the vigil binary starts");
    Process { child, base: format!("http://127.0.0.1:{port}") }
}

impl Process {
    async fn ready(&mut self, dir: &std::path::Path) {
        for _ in 0..600 {
            if reqwest::get(format!("{}/signin", self.base)).await.is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("vigil exited ({status}): {}", std::fs::read_to_string(dir.join("server.log")).unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("vigil did not start");
    }

    /// SIGKILL: no shutdown, no cleanup.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// A process killed (SIGKILL) while it trains ends, once started again, with the model TRAINED (its job is
/// claimed again when the lease runs out) — never stuck in TRAINING; and a model hosted before a SIGKILL is
/// hosted again by the next start and answers DetectAnomalies.
#[tokio::test]
async fn a_killed_server_finishes_training_and_hosts_again() {
    let Some(s3) = S3Server::start().await else { return };
    stage(&s3).await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut p = serve(dir.path(), &s3, port);
    p.ready(dir.path()).await;
    let h = common::client_for(&p.base);
    h.create_project().project_name("restart").send().await.unwrap();
    h.create_dataset().project_name("restart").dataset_type("train").dataset_source(manifest("train.manifest")).send().await.unwrap();
    h.create_dataset().project_name("restart").dataset_type("test").dataset_source(manifest("test.manifest")).send().await.unwrap();
    settle_dataset(&h, "restart", "train").await;
    settle_dataset(&h, "restart", "test").await;

    let m = h.create_model().project_name("restart").output_config(output(OUT)).send().await.unwrap();
    assert_eq!(m.model_metadata().unwrap().status(), Some(&ModelStatus::Training));
    // Kill it once a worker holds the training job (it has an owner), i.e. mid-training.
    use sqlx::Connection;
    let db = format!("sqlite://{}", dir.path().join("vigil.db").display());
    let mut claimed = false;
    for _ in 0..400 {
        let mut conn = sqlx::SqliteConnection::connect(&db).await.unwrap();
        let owner: Option<(Option<String>,)> =
            sqlx::query_as("select owner from job where kind = 'train'").fetch_optional(&mut conn).await.unwrap();
        if matches!(owner, Some((Some(_),))) {
            claimed = true;
            break;
        }
        assert!(owner.is_some(), "the training finished before the kill: make the test data larger");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(claimed, "no worker claimed the training job");
    p.kill();

    let mut p = serve(dir.path(), &s3, port);
    p.ready(dir.path()).await;
    let d = wait_model(&h, "restart", "1", &[ModelStatus::Training]).await;
    assert_eq!(d.status(), Some(&ModelStatus::Trained), "{:?}", d.status_message());
    assert!(d.performance().is_some());

    h.start_model().project_name("restart").model_version("1").min_inference_units(1).send().await.unwrap();
    let d = wait_model(&h, "restart", "1", &[ModelStatus::StartingHosting]).await;
    assert_eq!(d.status(), Some(&ModelStatus::Hosted), "{:?}", d.status_message());
    p.kill();

    let mut p = serve(dir.path(), &s3, port);
    p.ready(dir.path()).await;
    let d = wait_model(&h, "restart", "1", &[ModelStatus::StartingHosting]).await;
    assert_eq!(d.status(), Some(&ModelStatus::Hosted), "hosted again after the restart: {:?}", d.status_message());
    let r = h
        .detect_anomalies()
        .project_name("restart")
        .model_version("1")
        .content_type("image/jpeg")
        .body(ByteStream::from(small("anomaly/anomaly-7.jpg")))
        .send()
        .await
        .unwrap();
    assert!(r.detect_anomaly_result().unwrap().confidence().is_some());
    p.kill();
}
