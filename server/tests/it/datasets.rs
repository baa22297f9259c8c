//! The LFV dataset API through the official Rust client, importing from a real S3-compatible server.

use crate::common;

use aws_sdk_lookoutvision as lfv;
use aws_sdk_lookoutvision::error::ProvideErrorMetadata;
use aws_sdk_lookoutvision::primitives::Blob;
use aws_sdk_lookoutvision::types::{DatasetGroundTruthManifest, DatasetSource, DatasetStatus, InputS3Object};
use common::{Backend, Harness, S3Server};
use std::time::Duration;

/// The bucket the real LFV cookie manifests name.
const BUCKET: &str = "lookoutvision-us-east-1-0e205be246";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(common::repo_root().join("server/tests/fixtures/cookies").join(name)).unwrap()
}

fn manifest_source(bucket: &str, key: &str) -> DatasetSource {
    DatasetSource::builder()
        .ground_truth_manifest(
            DatasetGroundTruthManifest::builder()
                .s3_object(InputS3Object::builder().bucket(bucket).key(key).build())
                .build(),
        )
        .build()
}

/// Polls DescribeDataset until the dataset leaves its *_IN_PROGRESS state.
async fn settle(c: &lfv::Client, project: &str, dataset_type: &str) -> lfv::types::DatasetDescription {
    for _ in 0..600 {
        let d = c.describe_dataset().project_name(project).dataset_type(dataset_type).send().await.unwrap();
        let d = d.dataset_description.unwrap();
        match d.status() {
            Some(DatasetStatus::CreateInProgress | DatasetStatus::UpdateInProgress) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            _ => return d,
        }
    }
    panic!("the dataset never settled");
}

async fn entries(c: &lfv::Client, project: &str, f: impl Fn(lfv::operation::list_dataset_entries::builders::ListDatasetEntriesFluentBuilder) -> lfv::operation::list_dataset_entries::builders::ListDatasetEntriesFluentBuilder) -> Vec<serde_json::Value> {
    let out = f(c.list_dataset_entries().project_name(project).dataset_type("train")).send().await.unwrap();
    out.dataset_entries.unwrap_or_default().iter().map(|e| serde_json::from_str(e).unwrap()).collect()
}

/// Uploads the two cookie images and the mask at the paths the real manifests name, and the manifests.
async fn stage_cookies(s3: &S3Server) {
    s3.bucket(BUCKET);
    s3.put(BUCKET, "getting-started/training-images/normal-1.jpg", fixture("normal-1.jpg")).await;
    s3.put(BUCKET, "getting-started/training-images/anomaly-1.jpg", fixture("anomaly-1.jpg")).await;
    s3.put(BUCKET, "getting-started/mask-images/anomaly-1.png", fixture("mask-anomaly-1.png")).await;
    s3.put(BUCKET, "getting-started/mask-images/dummy_anomaly_mask.png", png(image::RgbaImage::from_pixel(16, 16, image::Rgba([255, 255, 255, 255])))).await;
    s3.put(BUCKET, "manifests/train_segmentation.manifest", fixture("train_segmentation.manifest")).await;
    s3.put(BUCKET, "manifests/train_class.manifest", fixture("train_class.manifest")).await;
}

async fn cookie_manifest_import(backend: Backend) {
    let Some(s3) = S3Server::start().await else { return };
    stage_cookies(&s3).await;
    let Some(h) = Harness::start_with(backend, Some(&s3)).await else { return };
    let c = &h.client;
    c.create_project().project_name("cookies").send().await.unwrap();

    // The real LFV segmentation manifest, as-is: 63 lines, of which only the 2 staged images exist.
    let created = c
        .create_dataset()
        .project_name("cookies")
        .dataset_type("train")
        .dataset_source(manifest_source(BUCKET, "manifests/train_segmentation.manifest"))
        .send()
        .await
        .unwrap();
    let meta = created.dataset_metadata.unwrap();
    assert_eq!(meta.status(), Some(&DatasetStatus::CreateInProgress));
    assert_eq!(meta.dataset_type(), Some("train"));

    let d = settle(c, "cookies", "train").await;
    assert_eq!(d.status(), Some(&DatasetStatus::CreateComplete), "{:?}", d.status_message());
    let msg = d.status_message().unwrap();
    assert!(msg.starts_with("Imported 2 of 63 items from the manifest s3://lookoutvision-us-east-1-0e205be246/manifests/train_segmentation.manifest. Skipped 61:"), "{msg}");
    assert!(msg.contains("object not found"), "{msg}");
    let stats = d.image_stats.unwrap();
    assert_eq!((stats.total, stats.labeled, stats.normal, stats.anomaly), (Some(2), Some(2), Some(1), Some(1)));

    // Entries are the manifest's own lines.
    let manifest = String::from_utf8(fixture("train_segmentation.manifest")).unwrap();
    let original: Vec<serde_json::Value> = manifest
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| {
            let r = v["source-ref"].as_str().unwrap();
            r.ends_with("/normal-1.jpg") || r.ends_with("/anomaly-1.jpg")
        })
        .collect();
    let mut listed = entries(c, "cookies", |b| b).await;
    listed.sort_by_key(|v| v["source-ref"].as_str().unwrap().to_string());
    let mut expected = original.clone();
    expected.sort_by_key(|v| v["source-ref"].as_str().unwrap().to_string());
    assert_eq!(listed, expected);

    // Every filter.
    let anomalies = entries(c, "cookies", |b| b.anomaly_class("anomaly")).await;
    assert_eq!(anomalies.len(), 1);
    assert!(anomalies[0]["source-ref"].as_str().unwrap().ends_with("anomaly-1.jpg"));
    assert_eq!(entries(c, "cookies", |b| b.anomaly_class("normal")).await.len(), 1);
    assert_eq!(entries(c, "cookies", |b| b.labeled(true)).await.len(), 2);
    assert_eq!(entries(c, "cookies", |b| b.labeled(false)).await.len(), 0);
    assert_eq!(entries(c, "cookies", |b| b.source_ref_contains("normal-1")).await.len(), 1);
    assert_eq!(entries(c, "cookies", |b| b.source_ref_contains("NORMAL-1")).await.len(), 0, "case-sensitive");
    assert_eq!(entries(c, "cookies", |b| b.source_ref_contains("%")).await.len(), 0, "% is literal");
    let future = lfv::primitives::DateTime::from_secs(4_102_444_800); // 2100-01-01
    let past = lfv::primitives::DateTime::from_secs(946_684_800); // 2000-01-01
    assert_eq!(entries(c, "cookies", |b| b.after_creation_date(future)).await.len(), 0);
    assert_eq!(entries(c, "cookies", |b| b.before_creation_date(future)).await.len(), 2);
    assert_eq!(entries(c, "cookies", |b| b.after_creation_date(past).anomaly_class("anomaly")).await.len(), 1);
    let err = c.list_dataset_entries().project_name("cookies").dataset_type("train").max_results(101).send().await.unwrap_err();
    assert!(err.into_service_error().is_validation_exception());

    // Pagination, one entry per page.
    let first = c.list_dataset_entries().project_name("cookies").dataset_type("train").max_results(1).send().await.unwrap();
    assert_eq!(first.dataset_entries().len(), 1);
    let token = first.next_token.clone().expect("a second page");
    // A token is for its own call: another dataset, another filter or another operation refuses it.
    let e = c.list_dataset_entries().project_name("cookies").dataset_type("test").next_token(token.clone()).send().await.unwrap_err();
    assert!(e.into_service_error().is_validation_exception(), "another dataset");
    let e = c.list_dataset_entries().project_name("cookies").dataset_type("train").anomaly_class("normal").next_token(token.clone()).send().await.unwrap_err();
    assert!(e.into_service_error().is_validation_exception(), "another filter");
    let e = c.list_projects().next_token(token.clone()).send().await.unwrap_err();
    assert!(e.into_service_error().is_validation_exception(), "another operation");
    let second = c
        .list_dataset_entries()
        .project_name("cookies")
        .dataset_type("train")
        .max_results(1)
        .next_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(second.dataset_entries().len(), 1);
    assert_ne!(first.dataset_entries()[0], second.dataset_entries()[0]);
    assert!(second.next_token.is_none());

    // DescribeProject lists the dataset; DeleteProject refuses while it exists.
    let p = c.describe_project().project_name("cookies").send().await.unwrap().project_description.unwrap();
    let ds = p.datasets();
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0].dataset_type(), Some("train"));
    assert_eq!(ds[0].status(), Some(&DatasetStatus::CreateComplete));
    let err = c.delete_project().project_name("cookies").send().await.unwrap_err().into_service_error();
    assert!(err.is_conflict_exception(), "{err:?}");

    // A second train dataset is a conflict; a classification manifest as the test dataset works.
    let err = c.create_dataset().project_name("cookies").dataset_type("train").send().await.unwrap_err().into_service_error();
    assert!(err.is_conflict_exception(), "{err:?}");
    c.create_dataset()
        .project_name("cookies")
        .dataset_type("test")
        .dataset_source(manifest_source(BUCKET, "manifests/train_class.manifest"))
        .send()
        .await
        .unwrap();
    let t = settle(c, "cookies", "test").await;
    assert_eq!(t.status(), Some(&DatasetStatus::CreateComplete));
    assert_eq!(t.image_stats.unwrap().total, Some(2));

    update_entries(c, &s3).await;

    // Delete both datasets, then the project.
    for t in ["train", "test"] {
        c.delete_dataset().project_name("cookies").dataset_type(t).send().await.unwrap();
        let err = c.describe_dataset().project_name("cookies").dataset_type(t).send().await.unwrap_err().into_service_error();
        assert!(err.is_resource_not_found_exception(), "{err:?}");
    }
    c.delete_project().project_name("cookies").send().await.unwrap();
    h.stop().await;
}

/// UpdateDatasetEntries: relabel, replace a line entirely, add an image; a failing update changes nothing.
async fn update_entries(c: &lfv::Client, s3: &S3Server) {
    let line = |key: &str, class: &str| {
        serde_json::json!({
            "source-ref": format!("s3://{BUCKET}/{key}"),
            "anomaly-label": if class == "anomaly" { 1 } else { 0 },
            "anomaly-label-metadata": {"class-name": class, "human-annotated": "yes", "type": "groundtruth/image-classification"}
        })
        .to_string()
    };
    s3.put(BUCKET, "extra/normal-copy.jpg", fixture("normal-1.jpg")).await;
    let changes = [
        line("getting-started/training-images/normal-1.jpg", "anomaly"),
        line("getting-started/training-images/anomaly-1.jpg", "anomaly"),
        line("extra/normal-copy.jpg", "normal"),
    ]
    .join("\n");
    let out = c
        .update_dataset_entries()
        .project_name("cookies")
        .dataset_type("train")
        .changes(Blob::new(changes))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), Some(&DatasetStatus::UpdateInProgress));
    let d = settle(c, "cookies", "train").await;
    assert_eq!(d.status(), Some(&DatasetStatus::UpdateComplete), "{:?}", d.status_message());
    let s = d.image_stats.unwrap();
    assert_eq!((s.total, s.normal, s.anomaly), (Some(3), Some(1), Some(2)));
    // The replaced anomaly line no longer has its mask: a line replaces the entry entirely.
    let anomaly = entries(c, "cookies", |b| b.source_ref_contains("anomaly-1.jpg")).await;
    assert!(anomaly[0].get("anomaly-mask-ref").is_none());

    // One missing object fails the whole update, and nothing changes.
    let before = entries(c, "cookies", |b| b).await;
    let changes = [line("extra/normal-copy.jpg", "anomaly"), line("extra/missing.jpg", "normal")].join("\n");
    c.update_dataset_entries().project_name("cookies").dataset_type("train").changes(Blob::new(changes)).send().await.unwrap();
    let d = settle(c, "cookies", "train").await;
    assert_eq!(d.status(), Some(&DatasetStatus::UpdateFailedRollbackComplete));
    assert!(d.status_message().unwrap().contains("extra/missing.jpg"), "{:?}", d.status_message());
    assert_eq!(entries(c, "cookies", |b| b).await, before);

    // Malformed changes are refused at once.
    let err = c
        .update_dataset_entries()
        .project_name("cookies")
        .dataset_type("train")
        .changes(Blob::new("{\"source-ref\": \"s3://b/x.jpg\"}\nnot json"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_validation_exception());
    assert!(err.message().unwrap().contains("line 2"), "{:?}", err.message());
}

#[tokio::test]
async fn cookie_manifests_on_sqlite() {
    cookie_manifest_import(Backend::Sqlite).await;
}

#[tokio::test]
async fn cookie_manifests_on_postgres() {
    cookie_manifest_import(Backend::Postgres).await;
}

fn png(img: image::RgbaImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A bucket full of bad objects: every one is reported with its reason, the good one is kept.
#[tokio::test]
async fn bad_objects_are_reported_and_good_ones_kept() {
    let Some(s3) = S3Server::start().await else { return };
    s3.bucket("bad");
    let normal = fixture("normal-1.jpg");
    s3.put("bad", "good.jpg", normal.clone()).await;
    s3.put("bad", "text.jpg", b"this is not an image".to_vec()).await;
    s3.put("bad", "empty.jpg", Vec::new()).await;
    s3.put("bad", "truncated.jpg", normal[..normal.len() / 3].to_vec()).await;
    s3.put("bad", "tiny.png", png(image::RgbaImage::new(16, 16))).await;
    s3.put("bad", "anomaly.jpg", fixture("anomaly-1.jpg")).await;
    s3.put("bad", "wrong-colour.png", png(image::RgbaImage::from_pixel(576, 768, image::Rgba([200, 0, 0, 255])))).await;
    let lines = [
        r#"{"source-ref":"s3://bad/good.jpg","a":0,"a-metadata":{"class-name":"normal"}}"#.to_string(),
        r#"{"source-ref":"s3://bad/text.jpg","a":0,"a-metadata":{"class-name":"normal"}}"#.to_string(),
        r#"{"source-ref":"s3://bad/empty.jpg"}"#.to_string(),
        r#"{"source-ref":"s3://bad/truncated.jpg"}"#.to_string(),
        r#"{"source-ref":"s3://bad/tiny.png"}"#.to_string(),
        "{broken".to_string(),
        r##"{"source-ref":"s3://bad/anomaly.jpg","a":1,"a-metadata":{"class-name":"anomaly"},"m-ref":"s3://bad/wrong-colour.png","m-ref-metadata":{"internal-color-map":{"0":{"class-name":"BACKGROUND","hex-color":"#ffffff"},"1":{"class-name":"cracked","hex-color":"#23A436"}}}}"##.to_string(),
        r#"{"source-ref":"https://example.com/x.jpg"}"#.to_string(),
    ];
    s3.put("bad", "m.manifest", lines.join("\n").into_bytes()).await;

    let h = Harness::start_with(Backend::Sqlite, Some(&s3)).await.unwrap();
    let c = &h.client;
    c.create_project().project_name("bad").send().await.unwrap();
    c.create_dataset().project_name("bad").dataset_type("train").dataset_source(manifest_source("bad", "m.manifest")).send().await.unwrap();
    let d = settle(c, "bad", "train").await;
    assert_eq!(d.status(), Some(&DatasetStatus::CreateComplete));
    let msg = d.status_message().unwrap();
    assert_eq!(d.image_stats.as_ref().unwrap().total, Some(1), "{msg}");
    assert!(msg.starts_with("Imported 1 of 8 items from the manifest s3://bad/m.manifest. Skipped 7:"), "{msg}");

    // The full report, line by line.
    let report = vigil::datasets::issues(
        &mut h.running.as_ref().unwrap().state.db.pool.acquire().await.unwrap(),
        &dataset_id(&h, "bad").await,
    )
    .await
    .unwrap();
    let reasons: Vec<(i64, String)> = report.iter().map(|i| (i.line.unwrap(), i.reason.clone())).collect();
    let find = |n: i64| reasons.iter().find(|(l, _)| *l == n).map(|(_, r)| r.clone()).unwrap_or_default();
    assert!(find(2).contains("not a JPEG or PNG"), "{reasons:?}");
    assert!(find(3).contains("empty"), "{reasons:?}");
    assert!(find(4).contains("could not be decoded"), "{reasons:?}");
    assert!(find(5).contains("16×16"), "{reasons:?}");
    assert!(find(6).contains("malformed"), "{reasons:?}");
    assert!(find(7).contains("not in its colour map"), "{reasons:?}");
    assert!(find(8).contains("not an s3://"), "{reasons:?}");

    // A missing manifest fails the dataset with a reason; it can be deleted and created again.
    c.create_dataset().project_name("bad").dataset_type("test").dataset_source(manifest_source("bad", "nope.manifest")).send().await.unwrap();
    let t = settle(c, "bad", "test").await;
    assert_eq!(t.status(), Some(&DatasetStatus::CreateFailed));
    assert!(t.status_message().unwrap().contains("object not found"), "{:?}", t.status_message());
    c.delete_dataset().project_name("bad").dataset_type("test").send().await.unwrap();
    h.stop().await;
}

async fn dataset_id(h: &Harness, project: &str) -> String {
    let mut conn = h.running.as_ref().unwrap().state.db.pool.acquire().await.unwrap();
    let p = vigil::projects::find(&mut conn, project).await.unwrap().unwrap();
    vigil::datasets::find(&mut conn, &p.id, "train").await.unwrap().unwrap().id
}

/// Empty datasets, names and types, idempotency.
#[tokio::test]
async fn dataset_validation_and_idempotency() {
    let h = Harness::start(Backend::Sqlite).await.unwrap();
    let c = &h.client;
    let err = c.create_dataset().project_name("nope").dataset_type("train").send().await.unwrap_err().into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    c.create_project().project_name("p").send().await.unwrap();
    let err = c.create_dataset().project_name("p").dataset_type("validation").send().await.unwrap_err().into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");

    let a = c.create_dataset().project_name("p").dataset_type("train").client_token("ds-1").send().await.unwrap();
    assert_eq!(a.dataset_metadata().unwrap().status(), Some(&DatasetStatus::CreateComplete));
    let b = c.create_dataset().project_name("p").dataset_type("train").client_token("ds-1").send().await.unwrap();
    assert_eq!(a.dataset_metadata, b.dataset_metadata, "same token, same answer");
    let err = c.create_dataset().project_name("p").dataset_type("test").client_token("ds-1").send().await.unwrap_err().into_service_error();
    assert!(err.is_conflict_exception(), "same token, other parameters: {err:?}");

    let d = c.describe_dataset().project_name("p").dataset_type("train").send().await.unwrap().dataset_description.unwrap();
    let s = d.image_stats.clone().unwrap();
    assert_eq!((s.total, s.labeled, s.normal, s.anomaly), (Some(0), Some(0), Some(0), Some(0)));
    assert_eq!(d.project_name(), Some("p"));
    let err = c.describe_dataset().project_name("p").dataset_type("test").send().await.unwrap_err().into_service_error();
    assert!(err.is_resource_not_found_exception());
    let err = c.list_dataset_entries().project_name("p").dataset_type("train").next_token("bad").send().await.unwrap_err();
    assert!(err.into_service_error().is_validation_exception());
    c.delete_dataset().project_name("p").dataset_type("train").send().await.unwrap();
    let err = c.delete_dataset().project_name("p").dataset_type("train").send().await.unwrap_err().into_service_error();
    assert!(err.is_resource_not_found_exception());
    h.stop().await;
}

/// The console's S3 folder import, deleting and moving images, and export → re-import through a manifest.
#[tokio::test]
async fn folder_import_edit_export_reimport() {
    use app::api::Backend as _;
    let Some(s3) = S3Server::start().await else { return };
    s3.bucket("boards");
    s3.put("boards", "circuit/train/normal/n1.jpg", fixture("normal-1.jpg")).await;
    s3.put("boards", "circuit/train/anomaly/a1.jpg", fixture("anomaly-1.jpg")).await;
    s3.put("boards", "circuit/train/extra.jpg", fixture("normal-1.jpg")).await;
    s3.put("boards", "circuit/train/readme.txt", b"hello".to_vec()).await;
    let h = Harness::start_with(Backend::Sqlite, Some(&s3)).await.unwrap();
    let c = &h.client;
    let console = vigil::console::ConsoleBackend { state: h.running.as_ref().unwrap().state.clone() };
    c.create_project().project_name("boards").send().await.unwrap();

    let err = console.import_s3("boards", "train", "not-a-uri", "folder", Default::default()).await.unwrap_err();
    assert_eq!(err.status, 400);
    console.import_s3("boards", "train", "s3://boards/circuit/train/", "folder", Default::default()).await.unwrap();
    let d = settle(c, "boards", "train").await;
    assert_eq!(d.status(), Some(&DatasetStatus::CreateComplete), "{:?}", d.status_message());
    let s = d.image_stats.clone().unwrap();
    assert_eq!((s.total, s.normal, s.anomaly), (Some(3), Some(1), Some(1)));
    assert!(d.status_message().unwrap().contains("readme.txt"), "{:?}", d.status_message());

    // Move the unlabelled image to a new test dataset, then delete it there.
    let page = console.entries("boards", "train", &app::api::EntryQuery { filter: "unlabeled".into(), ..Default::default() }).await.unwrap();
    assert_eq!(page.entries.len(), 1);
    let id = page.entries[0].id.clone();
    assert_eq!(console.move_entries("boards", "train", vec![id.clone()]).await.unwrap(), 1);
    let t = c.describe_dataset().project_name("boards").dataset_type("test").send().await.unwrap();
    assert_eq!(t.dataset_description.unwrap().image_stats.unwrap().total, Some(1));
    assert_eq!(console.delete_entries("boards", "test", vec![id]).await.unwrap(), 1);
    let t = c.describe_dataset().project_name("boards").dataset_type("test").send().await.unwrap();
    assert_eq!(t.dataset_description.unwrap().image_stats.unwrap().total, Some(0));

    // Relabel through the console; the LFV line follows.
    let anomaly = console.entries("boards", "train", &app::api::EntryQuery { filter: "anomaly".into(), ..Default::default() }).await.unwrap().entries;
    assert_eq!(console.set_labels("boards", "train", vec![anomaly[0].id.clone()], "normal").await.unwrap(), 1);
    let lines = entries(c, "boards", |b| b.anomaly_class("normal")).await;
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l["anomaly-label"] == 0 && l["anomaly-label-metadata"]["class-name"] == "normal"));

    // Export: a manifest with relative references beside the images.
    let zip_bytes = h.http().get(format!("{}/export/boards/train.zip", h.base)).send().await.unwrap().bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes.to_vec())).unwrap();
    let mut manifest = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("train.manifest").unwrap(), &mut manifest).unwrap();
    let lines: Vec<serde_json::Value> = manifest.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);

    // Re-import: upload the files and the manifest (references made absolute) to the bucket.
    let mut reimport = String::new();
    for l in &lines {
        let rel = l["source-ref"].as_str().unwrap().to_string();
        assert!(rel.starts_with("images/"), "{rel}");
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut zip.by_name(&rel).unwrap(), &mut bytes).unwrap();
        s3.put("boards", &format!("export/{rel}"), bytes).await;
        let mut l = l.clone();
        l["source-ref"] = serde_json::json!(format!("s3://boards/export/{rel}"));
        reimport.push_str(&format!("{l}\n"));
    }
    s3.put("boards", "export/train.manifest", reimport.into_bytes()).await;
    c.delete_dataset().project_name("boards").dataset_type("test").send().await.unwrap();
    c.create_dataset()
        .project_name("boards")
        .dataset_type("test")
        .dataset_source(manifest_source("boards", "export/train.manifest"))
        .send()
        .await
        .unwrap();
    let t = settle(c, "boards", "test").await;
    assert_eq!(t.status(), Some(&DatasetStatus::CreateComplete), "{:?}", t.status_message());
    let s = t.image_stats.unwrap();
    assert_eq!((s.total, s.normal, s.anomaly), (Some(2), Some(2), Some(0)));
    h.stop().await;
}

/// A segmentation dataset exports its masks and they come back identical.
#[tokio::test]
async fn masks_round_trip_through_export() {
    let Some(s3) = S3Server::start().await else { return };
    stage_cookies(&s3).await;
    let h = Harness::start_with(Backend::Sqlite, Some(&s3)).await.unwrap();
    let c = &h.client;
    c.create_project().project_name("seg").send().await.unwrap();
    c.create_dataset()
        .project_name("seg")
        .dataset_type("train")
        .dataset_source(manifest_source(BUCKET, "manifests/train_segmentation.manifest"))
        .send()
        .await
        .unwrap();
    settle(c, "seg", "train").await;
    let zip_bytes = h.http().get(format!("{}/export/seg/train.zip", h.base)).send().await.unwrap().bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes.to_vec())).unwrap();
    let mut manifest = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("train.manifest").unwrap(), &mut manifest).unwrap();
    let anomaly: serde_json::Value =
        manifest.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).find(|l| l["anomaly-label"] == 1).unwrap();
    let mask_path = anomaly["anomaly-mask-ref"].as_str().unwrap();
    assert!(mask_path.starts_with("masks/"), "{mask_path}");
    let mut mask = Vec::new();
    std::io::Read::read_to_end(&mut zip.by_name(mask_path).unwrap(), &mut mask).unwrap();
    assert_eq!(mask, fixture("mask-anomaly-1.png"), "the mask bytes are kept exactly");
    assert_eq!(
        anomaly["anomaly-mask-ref-metadata"]["internal-color-map"]["0"]["hex-color"], "#23A436",
        "the colour map is kept"
    );

    // Renaming a label rewrites the colour maps that use it, and only those.
    use app::api::Backend as _;
    let console = vigil::console::ConsoleBackend { state: h.running.as_ref().unwrap().state.clone() };
    assert_eq!(console.rename_label("seg", "cracked", "not valid!").await.unwrap_err().status, 400);
    assert_eq!(console.rename_label("seg", "cracked", "crack").await.unwrap(), 1);
    let lines = entries(c, "seg", |b| b.anomaly_class("anomaly")).await;
    assert_eq!(lines[0]["anomaly-mask-ref-metadata"]["internal-color-map"]["0"]["class-name"], "crack");

    // The project's labels: imported ones are registered (renamed with their masks), with use counts; the
    // gallery filters by them; a used label cannot be deleted, an unused one can.
    let labels = console.labels("seg").await.unwrap();
    assert_eq!(labels.iter().map(|l| (l.name.as_str(), l.uses)).collect::<Vec<_>>(), vec![("crack", 1)]);
    assert_eq!(labels[0].color, "#23A436");
    let typed = console.entries("seg", "train", &app::api::EntryQuery { filter: "type:crack".into(), ..Default::default() }).await.unwrap().entries;
    assert_eq!(typed.len(), 1);
    assert!(typed[0].has_mask);
    assert!(console.entries("seg", "train", &app::api::EntryQuery { filter: "type:cracked".into(), ..Default::default() }).await.unwrap().entries.is_empty());
    assert_eq!(console.delete_label("seg", "crack").await.unwrap_err().status, 409);
    console.create_label("seg", "scratch", "#1f77b4").await.unwrap();
    assert_eq!(console.create_label("seg", "scratch", "#1F77B4").await.unwrap_err().status, 409);
    assert_eq!(console.create_label("seg", "no spaces", "#1F77B4").await.unwrap_err().status, 400);
    assert_eq!(console.create_label("seg", "white", "#FFFFFF").await.unwrap_err().status, 400);
    console.recolor_label("seg", "scratch", "#F2A541").await.unwrap();
    assert_eq!(console.recolor_label("seg", "nothing", "#F2A541").await.unwrap_err().status, 404);
    let labels = console.labels("seg").await.unwrap();
    assert_eq!(labels[1].name, "scratch");
    assert_eq!((labels[1].color.as_str(), labels[1].uses), ("#F2A541", 0));
    let anomaly_id = typed[0].id.clone();
    let detail = console.entry("seg", "train", &anomaly_id).await.unwrap();
    assert_eq!(detail.labels.len(), 2, "the painter offers every project label");
    assert_eq!(detail.mask_classes[0].name, "crack");
    console.delete_label("seg", "scratch").await.unwrap();
    assert_eq!(console.delete_label("seg", "scratch").await.unwrap_err().status, 404);
    assert_eq!(console.labels("seg").await.unwrap().len(), 1);
    h.stop().await;
}

/// Blobs nothing uses any more (their images deleted) are collected, with their rows; blobs in use stay, and
/// so do young ones (an import writes its blobs before it commits the entries that use them).
#[tokio::test]
async fn unused_blobs_are_collected() {
    use app::api::Backend as _;
    let h = Harness::start(Backend::Sqlite).await.unwrap();
    let state = h.running.as_ref().unwrap().state.clone();
    let console = vigil::console::ConsoleBackend { state: state.clone() };
    h.client.create_project().project_name("gc").send().await.unwrap();
    let files = vec![("normal-1.jpg".to_string(), fixture("normal-1.jpg")), ("anomaly-1.jpg".to_string(), fixture("anomaly-1.jpg"))];
    let report = console.upload("gc", "train", "normal", files).await.unwrap();
    assert_eq!(report.added, 2, "{report:?}");
    let page = console.entries("gc", "train", &app::api::EntryQuery::default()).await.unwrap().entries;
    let (gone, kept) = (page[0].clone(), page[1].clone());
    console.delete_entries("gc", "train", vec![gone.id.clone()]).await.unwrap();

    let blob_rows = |hash: String| {
        let state = state.clone();
        async move {
            let mut conn = state.db.pool.acquire().await.unwrap();
            let (n,): (i64,) = sqlx::query_as("select count(*) from blob where hash = $1").bind(hash).fetch_one(&mut *conn).await.unwrap();
            n
        }
    };
    // Young blobs are left alone.
    assert!(vigil::collect_blob_garbage(&state.db, &state.blobs, Duration::from_secs(3600)).await.unwrap().is_empty());
    let removed = vigil::collect_blob_garbage(&state.db, &state.blobs, Duration::ZERO).await.unwrap();
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0].hash, gone.image);
    assert!(removed[0].bytes > 0);
    assert!(state.blobs.get(&gone.image).is_err());
    assert_eq!(blob_rows(gone.image.clone()).await, 0);
    assert!(state.blobs.get(&kept.image).is_ok());
    assert_eq!(blob_rows(kept.image.clone()).await, 1);
    // The kept image still serves.
    let r = h.http().get(format!("{}/media/{}", h.base, kept.image)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    h.stop().await;
}

/// The gallery's name order follows the file name the user sees — not an upload's hash folder, nor an
/// import's bucket and folders — ignoring case, the same on both backends and across offset pages.
async fn name_order(backend: Backend) {
    use vigil::datasets::{entry_ids, list_entries, upsert_entries, BlobInfo, EntryFilter, EntryOrder, NewEntry};
    let Some(h) = Harness::start(backend).await else { return };
    let state = h.running.as_ref().unwrap().state.clone();
    let mut conn = state.db.pool.acquire().await.unwrap();
    let p = vigil::projects::create(&mut conn, "names", &Default::default()).await.unwrap();
    let d = vigil::datasets::create(&mut conn, &p.id, "train", vigil::datasets::CREATE_COMPLETE).await.unwrap();
    // In the order the gallery must show them; their hash folders and paths sort the other way.
    let sorted = [
        "s3://bucket/z/anomaly/mp_001.png",
        "vigil://upload/ff00000000000000/mp_024.jpg",
        "vigil://upload/ee00000000000000/mp_033.jpg",
        "s3://bucket/y/MP_034.jpg",
        "/srv/images/normal/mp_034.jpg",
        "vigil://upload/0000000000000000/mp_100.jpg",
        "mp_135.jpg",
    ];
    let blob = BlobInfo { hash: "ab".repeat(32), size: 1, content_type: "image/jpeg".into(), width: 1, height: 1 };
    let line = |r: &str| serde_json::json!({ "source-ref": r }).to_string();
    let new: Vec<NewEntry> = sorted.iter().rev().map(|r| NewEntry::from_text(r.to_string(), blob.clone(), None, None, line(r))).collect();
    upsert_entries(&mut conn, &d.id, &new).await.unwrap();
    let filter = EntryFilter { order: EntryOrder::Name, ..Default::default() };
    let mut paged = Vec::new();
    for offset in (0..sorted.len() as i64).step_by(3) {
        paged.extend(list_entries(&mut conn, &d.id, &filter, None, 3, offset).await.unwrap());
    }
    assert_eq!(paged.iter().map(|e| e.source_ref.as_str()).collect::<Vec<_>>(), sorted, "{backend:?}");
    let ids = entry_ids(&mut conn, &d.id, &filter).await.unwrap();
    assert_eq!(ids, paged.iter().map(|e| e.id.clone()).collect::<Vec<_>>());
    drop(conn);
    h.stop().await;
}

#[tokio::test]
async fn name_order_on_sqlite() {
    name_order(Backend::Sqlite).await;
}

#[tokio::test]
async fn name_order_on_postgres() {
    name_order(Backend::Postgres).await;
}
