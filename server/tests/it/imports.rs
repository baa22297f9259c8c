//! The console's other import paths: MVTec AD categories (from the server's disk and from a bucket with
//! per-import credentials), folders with masks, and archives written by the export, imported back.

use crate::common;

use app::api::{Backend as _, S3Connection};
use aws_sdk_lookoutvision as lfv;
use aws_sdk_lookoutvision::types::DatasetStatus;
use common::{Backend, Harness, S3Server, S3_KEY, S3_SECRET};
use std::path::Path;
use std::time::Duration;
use vigil::console::ConsoleBackend;

async fn settle(c: &lfv::Client, project: &str, dataset_type: &str) -> lfv::types::DatasetDescription {
    for _ in 0..600 {
        let d = c.describe_dataset().project_name(project).dataset_type(dataset_type).send().await.unwrap();
        let d = d.dataset_description.unwrap();
        if d.status() != Some(&DatasetStatus::CreateInProgress) {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the dataset never settled");
}

fn counts(d: &lfv::types::DatasetDescription) -> (i32, i32, i32) {
    let s = d.image_stats.clone().unwrap();
    (s.total.unwrap(), s.normal.unwrap(), s.anomaly.unwrap())
}

fn encode(img: image::DynamicImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A small synthetic part: a grey disc, with a dark scratch when `defect`.
fn part(seed: u32, defect: bool) -> Vec<u8> {
    let img = image::RgbImage::from_fn(96, 64, |x, y| {
        let d = ((x as i32 - 48).pow(2) + (y as i32 - 32).pow(2)) as u32;
        let base = if d < 700 { 150 + (seed * 7 % 20) as u8 } else { 40 };
        let scratch = defect && (30..60).contains(&x) && (y as i32 - 20 - (x as i32 - 30) / 3).abs() < 2;
        image::Rgb(if scratch { [10, 10, 10] } else { [base, base, base.saturating_add(5)] })
    });
    encode(image::DynamicImage::ImageRgb8(img))
}

/// MVTec's ground truth: white on black, 8-bit grey.
fn gt_mask() -> Vec<u8> {
    let img = image::GrayImage::from_fn(96, 64, |x, y| {
        image::Luma([if (30..60).contains(&x) && (y as i32 - 20 - (x as i32 - 30) / 3).abs() < 2 { 255 } else { 0 }])
    });
    encode(image::DynamicImage::ImageLuma8(img))
}

/// The files of a small MVTec AD category: 4 good training images, 2 good test images, 2 `broken_large`
/// (one without a mask) and 1 `contamination`, with the licence file MVTec ships.
fn mvtec_files() -> Vec<(String, Vec<u8>)> {
    let mut files = vec![("license.txt".to_string(), b"CC BY-NC-SA 4.0".to_vec())];
    for i in 0..4 {
        files.push((format!("train/good/{i:03}.png"), part(i, false)));
    }
    for i in 0..2 {
        files.push((format!("test/good/{i:03}.png"), part(10 + i, false)));
    }
    files.push(("test/broken_large/000.png".into(), part(20, true)));
    files.push(("test/broken_large/001.png".into(), part(21, true)));
    files.push(("ground_truth/broken_large/000_mask.png".into(), gt_mask()));
    files.push(("test/contamination/000.png".into(), part(22, true)));
    files.push(("ground_truth/contamination/000_mask.png".into(), gt_mask()));
    files
}

fn write_tree(root: &Path, files: &[(String, Vec<u8>)]) {
    for (rel, bytes) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

fn console(h: &Harness) -> ConsoleBackend {
    ConsoleBackend { state: h.running.as_ref().unwrap().state.clone() }
}

async fn check_mvtec(h: &Harness, project: &str) {
    let c = &h.client;
    let train = settle(c, project, "train").await;
    assert_eq!(train.status(), Some(&DatasetStatus::CreateComplete), "{:?}", train.status_message());
    assert_eq!(counts(&train), (4, 4, 0));
    assert!(train.status_message().unwrap().contains("license.txt"), "{:?}", train.status_message());
    let test = settle(c, project, "test").await;
    assert_eq!(test.status(), Some(&DatasetStatus::CreateComplete), "{:?}", test.status_message());
    assert_eq!(counts(&test), (5, 2, 3));

    // Each defect folder is an anomaly label in its own colour; masks are LFV masks in that colour.
    let con = console(h);
    let labels = con.labels(project).await.unwrap();
    let names: Vec<(&str, i64)> = labels.iter().map(|l| (l.name.as_str(), l.uses)).collect();
    assert_eq!(names, vec![("broken_large", 1), ("contamination", 1)]);
    assert_ne!(labels[0].color, labels[1].color);
    let broken = con.entries(project, "test", &app::api::EntryQuery { filter: "type:broken_large".into(), ..Default::default() }).await.unwrap().entries;
    assert_eq!(broken.len(), 1);
    assert!(broken[0].source_ref.ends_with("test/broken_large/000.png"), "{}", broken[0].source_ref);
    let out = c.list_dataset_entries().project_name(project).dataset_type("test").anomaly_class("anomaly").send().await.unwrap();
    let lines: Vec<serde_json::Value> = out.dataset_entries().iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    let masked: Vec<&serde_json::Value> = lines.iter().filter(|l| l.get("anomaly-mask-ref").is_some()).collect();
    assert_eq!(masked.len(), 2, "the unmasked broken_large image stays a plain anomaly");
    for l in &masked {
        assert!(l["anomaly-mask-ref"].as_str().unwrap().starts_with("vigil://mask/"), "{l}");
        let map = &l["anomaly-mask-ref-metadata"]["internal-color-map"];
        assert_eq!(map["0"]["class-name"], "BACKGROUND");
    }
    let detail = con.entry(project, "test", &broken[0].id).await.unwrap();
    let mask_hash = detail.mask.unwrap();
    let state = &h.running.as_ref().unwrap().state;
    let mask = image::load_from_memory(&state.blobs.get(&mask_hash).unwrap()).unwrap().to_rgb8();
    let colour = vigil::datasets::manifest::parse_hex_color(&labels[0].color).unwrap();
    assert_eq!(mask.get_pixel(45, 25).0, colour, "the scratch is painted in the label's colour");
    assert_eq!(mask.get_pixel(2, 2).0, [255, 255, 255], "the background is LFV's white");
}

#[tokio::test]
async fn mvtec_from_the_servers_disk() {
    let h = Harness::start(Backend::Sqlite).await.unwrap();
    let con = console(&h);
    h.client.create_project().project_name("bottle").send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_tree(&dir.path().join("bottle"), &mvtec_files());
    let root = dir.path().join("bottle");

    // Refused at once: a relative path, a missing folder, an unknown kind.
    assert_eq!(con.import_s3("bottle", "train", "bottle", "mvtec", Default::default()).await.unwrap_err().status, 400);
    let missing = dir.path().join("nothing");
    assert_eq!(con.import_s3("bottle", "train", missing.to_str().unwrap(), "mvtec", Default::default()).await.unwrap_err().status, 400);
    assert_eq!(con.import_s3("bottle", "train", root.to_str().unwrap(), "zip", Default::default()).await.unwrap_err().status, 400);

    con.import_s3("bottle", "train", root.to_str().unwrap(), "mvtec", Default::default()).await.unwrap();
    check_mvtec(&h, "bottle").await;
    // Both datasets exist now: a second MVTec import is refused.
    assert_eq!(con.import_s3("bottle", "train", root.to_str().unwrap(), "mvtec", Default::default()).await.unwrap_err().status, 409);
    // Deleting the project (from the console: with its datasets) takes its labels too; a new project of the
    // same name starts clean.
    con.delete_project("bottle").await.unwrap();
    h.client.create_project().project_name("bottle").send().await.unwrap();
    assert!(con.labels("bottle").await.unwrap().is_empty());

    // A folder that is not MVTec fails with a reason a person can act on.
    h.client.create_project().project_name("notmvtec").send().await.unwrap();
    con.import_s3("notmvtec", "train", dir.path().to_str().unwrap(), "mvtec", Default::default()).await.unwrap();
    let d = settle(&h.client, "notmvtec", "train").await;
    assert_eq!(d.status(), Some(&DatasetStatus::CreateFailed));
    assert!(d.status_message().unwrap().contains("train/good"), "{:?}", d.status_message());
    h.stop().await;
}

/// The server has no S3 settings at all: the import brings its own endpoint (on the administrator's allow-list)
/// and keys; wrong keys fail the import with a reason and leave nothing behind.
#[tokio::test]
async fn mvtec_and_masked_folders_from_a_bucket_with_per_import_credentials() {
    let Some(s3) = S3Server::start().await else { return };
    s3.bucket("mvtec");
    for (rel, bytes) in mvtec_files() {
        s3.put("mvtec", &format!("bottle/{rel}"), bytes).await;
    }
    s3.put("mvtec", "parts/normal/n1.png", part(1, false)).await;
    s3.put("mvtec", "parts/anomaly/a1.png", part(2, true)).await;
    s3.put("mvtec", "parts/masks/a1.png", gt_mask()).await;
    let endpoint = s3.endpoint.clone();
    let h = Harness::start_tuned(Backend::Sqlite, None, |c| c.s3_allowed_endpoints = vec![endpoint]).await.unwrap();
    let con = console(&h);
    let c = &h.client;
    let good = S3Connection {
        endpoint: s3.endpoint.clone(),
        region: "us-east-1".into(),
        access_key_id: S3_KEY.into(),
        secret_access_key: S3_SECRET.into(),
        addressing: "path".into(),
    };

    c.create_project().project_name("wrongkeys").send().await.unwrap();
    let bad = S3Connection { secret_access_key: "not-the-secret".into(), ..good.clone() };
    // Refused before anything is created, with the reason.
    let e = con.import_s3("wrongkeys", "train", "s3://mvtec/parts/", "folder", bad).await.unwrap_err();
    assert_eq!(e.status, 400);
    assert!(e.message.contains("denied"), "{}", e.message);
    let missing = c.describe_dataset().project_name("wrongkeys").dataset_type("train").send().await.unwrap_err().into_service_error();
    assert!(missing.is_resource_not_found_exception(), "{missing:?}");
    // A prefix with nothing under it is refused up front too.
    let e = con.import_s3("wrongkeys", "train", "s3://mvtec/nothing-here/", "folder", good.clone()).await.unwrap_err();
    assert_eq!(e.status, 400, "{}", e.message);
    let half = S3Connection { secret_access_key: String::new(), ..good.clone() };
    assert_eq!(con.import_s3("wrongkeys", "test", "s3://mvtec/parts/", "folder", half).await.unwrap_err().status, 400);
    let bad_endpoint = S3Connection { endpoint: "minio:9000".into(), ..good.clone() };
    assert_eq!(con.import_s3("wrongkeys", "test", "s3://mvtec/parts/", "folder", bad_endpoint).await.unwrap_err().status, 400);

    c.create_project().project_name("bottle").send().await.unwrap();
    con.import_s3("bottle", "train", "s3://mvtec/bottle", "mvtec", good.clone()).await.unwrap();
    check_mvtec(&h, "bottle").await;

    // A normal/anomaly folder with masks/: the anomaly's mask is attached under the label `defect`.
    c.create_project().project_name("parts").send().await.unwrap();
    con.import_s3("parts", "train", "s3://mvtec/parts/", "folder", good).await.unwrap();
    let d = settle(c, "parts", "train").await;
    assert_eq!(d.status(), Some(&DatasetStatus::CreateComplete), "{:?}", d.status_message());
    assert_eq!(counts(&d), (2, 1, 1));
    let typed = con.entries("parts", "train", &app::api::EntryQuery { filter: "type:defect".into(), ..Default::default() }).await.unwrap().entries;
    assert_eq!(typed.len(), 1);
    assert!(typed[0].has_mask && typed[0].source_ref.ends_with("anomaly/a1.png"));
    h.stop().await;
}

/// Export → import: a dataset with masks travels through the export archive into another project and comes
/// back with the same images, labels, masks (byte for byte) and anomaly labels.
#[tokio::test]
async fn archives_from_the_export_import_back() {
    let h = Harness::start(Backend::Sqlite).await.unwrap();
    let con = console(&h);
    let c = &h.client;
    let http = h.http();
    c.create_project().project_name("source").send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &mvtec_files());
    con.import_s3("source", "train", dir.path().to_str().unwrap(), "mvtec", Default::default()).await.unwrap();
    check_mvtec(&h, "source").await;

    let export = http.get(format!("{}/export/source/test.zip", h.base)).send().await.unwrap();
    assert_eq!(export.status(), 200);
    assert_eq!(export.headers()["content-type"], "application/zip");
    let archive = export.bytes().await.unwrap().to_vec();

    c.create_project().project_name("copy").send().await.unwrap();
    let post = |project: &str, t: &str, body: Vec<u8>| {
        http.post(format!("{}/import/{project}/{t}?name=source-test.zip", h.base)).header("content-type", "application/zip").body(body).send()
    };
    // Refusals: an unknown project, a bad dataset type, an empty body.
    assert_eq!(post("nobody", "train", archive.clone()).await.unwrap().status(), 404);
    assert_eq!(post("copy", "validation", archive.clone()).await.unwrap().status(), 400);
    let r = post("copy", "train", Vec::new()).await.unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("empty"));

    let r = post("copy", "test", archive.clone()).await.unwrap();
    assert_eq!(r.status(), 202);
    let d = settle(c, "copy", "test").await;
    assert_eq!(d.status(), Some(&DatasetStatus::CreateComplete), "{:?}", d.status_message());
    assert_eq!(counts(&d), (5, 2, 3));
    assert_eq!(post("copy", "test", archive.clone()).await.unwrap().status(), 409);

    // Same masks, byte for byte, under the same labels and colours.
    let mask_set = |project: &'static str| {
        let con = console(&h);
        async move {
            let mut out = Vec::new();
            for e in con.entries(project, "test", &app::api::EntryQuery { filter: "anomaly".into(), ..Default::default() }).await.unwrap().entries {
                let d = con.entry(project, "test", &e.id).await.unwrap();
                out.push((e.image.clone(), d.mask.clone(), d.mask_classes.clone()));
            }
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
    };
    let (a, b) = (mask_set("source").await, mask_set("copy").await);
    assert_eq!(a, b);
    assert_eq!(a.iter().filter(|m| m.1.is_some()).count(), 2);
    let names = |ls: Vec<app::api::AnomalyLabelUse>| ls.into_iter().map(|l| (l.name, l.color, l.uses)).collect::<Vec<_>>();
    assert_eq!(names(con.labels("copy").await.unwrap()), names(con.labels("source").await.unwrap()));

    // Exporting the copy gives the same manifest paths (no second hash prefix on the names).
    let again = http.get(format!("{}/export/copy/test.zip", h.base)).send().await.unwrap().bytes().await.unwrap().to_vec();
    let list = |bytes: Vec<u8>| {
        let zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut names: Vec<String> = zip.file_names().map(str::to_string).collect();
        names.sort();
        names
    };
    assert_eq!(list(again), list(archive));

    // Not an archive, and an archive without a manifest: the dataset fails with the reason.
    c.create_project().project_name("junk").send().await.unwrap();
    assert_eq!(post("junk", "train", b"this is not a zip".to_vec()).await.unwrap().status(), 202);
    let d = settle(c, "junk", "train").await;
    assert_eq!(d.status(), Some(&DatasetStatus::CreateFailed));
    assert!(d.status_message().unwrap().contains("not a zip archive"), "{:?}", d.status_message());
    let mut empty_zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    empty_zip.start_file("readme.txt", zip::write::SimpleFileOptions::default()).unwrap();
    std::io::Write::write_all(&mut empty_zip, b"hi").unwrap();
    let bytes = empty_zip.finish().unwrap().into_inner();
    assert_eq!(post("junk", "test", bytes).await.unwrap().status(), 202);
    let d = settle(c, "junk", "test").await;
    assert_eq!(d.status(), Some(&DatasetStatus::CreateFailed));
    assert!(d.status_message().unwrap().contains("no .manifest"), "{:?}", d.status_message());

    // A manifest line beyond 256 KiB is refused as it is read (the manifest is streamed, never held whole).
    c.create_project().project_name("long-line").send().await.unwrap();
    let mut long = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    long.start_file("train.manifest", zip::write::SimpleFileOptions::default()).unwrap();
    std::io::Write::write_all(&mut long, format!("{{\"source-ref\": \"{}\"}}\n", "x".repeat(300 * 1024)).as_bytes()).unwrap();
    assert_eq!(post("long-line", "train", long.finish().unwrap().into_inner()).await.unwrap().status(), 202);
    let d = settle(c, "long-line", "train").await;
    assert_eq!(d.status(), Some(&DatasetStatus::CreateFailed));
    assert!(d.status_message().unwrap().contains("longer than 256 KiB"), "{:?}", d.status_message());
    h.stop().await;
}

/// A server stopped in the middle of an import leaves the dataset in progress with its job recorded; the next
/// start runs the job again and the dataset completes. A dataset left in progress with no job (an earlier
/// version's) is marked failed with a message saying why.
#[tokio::test]
async fn interrupted_jobs_resume_after_a_restart() {
    use vigil::datasets::{self, import::Place};
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("parts");
    write_tree(
        &images,
        &[
            ("normal/n1.png".into(), part(1, false)),
            ("normal/n2.png".into(), part(2, false)),
            ("anomaly/a1.png".into(), part(3, true)),
            ("masks/a1.png".into(), gt_mask()),
        ],
    );
    let mut config = vigil::config::Config::defaults();
    config.addr = "127.0.0.1:0".parse().unwrap();
    config.database_url = format!("sqlite://{}", dir.path().join("vigil.db").display());
    config.data_dir = dir.path().join("data");
    config.backbone = common::backbone_path();
    config.torch_threads = Some(1);

    // What a server killed mid-import leaves behind.
    let first = vigil::start(config.clone()).await.unwrap();
    let state = first.state.clone();
    let (train, test) = {
        let mut tx = state.db.begin_write().await.unwrap();
        let p = vigil::projects::create(&mut tx, "resume", &Default::default()).await.unwrap();
        let train = datasets::create(&mut tx, &p.id, "train", datasets::CREATE_IN_PROGRESS).await.unwrap();
        let test = datasets::create(&mut tx, &p.id, "test", datasets::CREATE_IN_PROGRESS).await.unwrap();
        let job = vigil::jobs::Job::Folder { dataset_id: train.id.clone(), place: Place::Dir(images.clone()).to_string(), s3: None };
        vigil::jobs::enqueue(&mut tx, &job).await.unwrap();
        tx.commit().await.unwrap();
        (train, test)
    };
    let pool = state.db.pool.clone();
    first.stop().await.unwrap();
    pool.close().await;

    let second = vigil::start(config).await.unwrap();
    let con = ConsoleBackend { state: second.state.clone() };
    let mut done = None;
    for _ in 0..600 {
        let d = con.dataset("resume", "train").await.unwrap();
        if d.summary.status != "CREATE_IN_PROGRESS" {
            done = Some(d);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let d = done.expect("the resumed import settles");
    assert_eq!(d.summary.status, "CREATE_COMPLETE", "{:?}", d.summary.status_message);
    assert_eq!((d.summary.total, d.summary.normal, d.summary.anomaly), (3, 2, 1));
    let t = con.dataset("resume", "test").await.unwrap();
    assert_eq!(t.summary.status, "CREATE_FAILED");
    assert!(t.summary.status_message.unwrap().contains("restart"));
    let typed = con.entries("resume", "train", &app::api::EntryQuery { filter: "type:defect".into(), ..Default::default() }).await.unwrap().entries;
    assert_eq!(typed.len(), 1, "the resumed folder import attached the mask");
    // The finished job is gone.
    let mut remaining = 1;
    for _ in 0..50 {
        let (n,): (i64,) = sqlx::query_as("select count(*) from job").fetch_one(&second.state.db.pool).await.unwrap();
        remaining = n;
        if n == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(remaining, 0);
    let _ = (train, test);
    let pool = second.state.db.pool.clone();
    second.stop().await.unwrap();
    pool.close().await;
}

/// A per-import endpoint (on the allow-list) that accepts connections and never answers: the import is refused
/// up front once the S3 call times out, with the reason, and leaves nothing behind — the dataset is never
/// left busy.
#[tokio::test]
async fn a_blackhole_endpoint_times_out_with_a_reason() {
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = hole.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((s, _)) = hole.accept().await {
            sockets.push(s); // kept open, never read from or written to
        }
    });
    let endpoint = format!("http://{addr}");
    let allowed = endpoint.clone();
    let h = Harness::start_tuned(Backend::Sqlite, None, |c| c.s3_allowed_endpoints = vec![allowed]).await.unwrap();
    let con = console(&h);
    h.client.create_project().project_name("blackhole").send().await.unwrap();
    let conn = S3Connection {
        endpoint,
        region: "us-east-1".into(),
        access_key_id: "AKIDHOLE".into(),
        secret_access_key: "hole-secret".into(),
        addressing: "path".into(),
    };
    let started = std::time::Instant::now();
    let e = con.import_s3("blackhole", "train", "s3://parts/train.manifest", "manifest", conn).await.unwrap_err();
    assert_eq!(e.status, 400);
    assert!(e.message.contains("did not answer"), "{}", e.message);
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    let missing = h.client.describe_dataset().project_name("blackhole").dataset_type("train").send().await.unwrap_err().into_service_error();
    assert!(missing.is_resource_not_found_exception(), "{missing:?}");
    held.abort();
    h.stop().await;
}
