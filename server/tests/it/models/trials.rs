//! Trial detections and batch runs through Vigil's signed REST extension (`/vigil/v1`), on the model version the
//! lifecycle test trained and hosted: a trial over the test dataset agrees with the evaluation, a trial over an S3
//! prefix, verification, adding the verified images to the training dataset, batches to a download and to S3,
//! and the refusals.

use super::common::{Harness, S3Server};
use super::{small, DATA, OUT};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

async fn call(h: &Harness, method: &str, path: &str, body: Option<Value>) -> (u16, Value, reqwest::header::HeaderMap) {
    let (ct, bytes) = match &body {
        Some(b) => (Some("application/json"), b.to_string().into_bytes()),
        None => (None, Vec::new()),
    };
    let r = h.signed(method, &format!("/vigil/v1{path}"), ct, bytes).await;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), headers)
}

async fn wait(h: &Harness, path: &str, key: &str) -> Value {
    for _ in 0..600 {
        let (s, v, _) = call(h, "GET", path, None).await;
        assert_eq!(s, 200, "{v}");
        if v[key]["Status"] != "RUNNING" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{path} kept running");
}

/// Runs the checks; returns the detections the trials and batches made (they count in /metrics like any other:
/// trials on the version's trial lane, batches through the hosted model).
/// `evaluated` maps each test image's source-ref to the verdict the evaluation gave it.
pub async fn trials_and_batches(h: &Harness, s3: &S3Server, evaluated: &HashMap<String, bool>) -> u64 {
    // A trial over the test dataset agrees with the evaluation of the same model.
    let (s, v, _) = call(h, "POST", "/projects/cookies/trials", Some(json!({"TrialName": "week 48", "ModelVersion": "1", "Source": "dataset:test"}))).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["Trial"]["TrialName"], "week 48");
    let (s, v, headers) = call(h, "POST", "/projects/cookies/trials", Some(json!({"TrialName": "week 48", "ModelVersion": "1", "Source": "dataset:test"}))).await;
    assert_eq!((s, headers["x-amzn-errortype"].to_str().unwrap()), (409, "ConflictException"), "{v}");
    for (body, status, code) in [
        (json!({"TrialName": "x", "ModelVersion": "1", "Source": "ftp://nowhere"}), 400, "ValidationException"),
        (json!({"TrialName": "a/b", "ModelVersion": "1", "Source": "dataset:test"}), 400, "ValidationException"),
        (json!({"TrialName": "x", "ModelVersion": "99", "Source": "dataset:test"}), 404, "ResourceNotFoundException"),
        (json!({"TrialName": "x", "ModelVersion": "1", "Source": "dataset:test", "Extra": 1}), 400, "ValidationException"),
    ] {
        let (s, v, headers) = call(h, "POST", "/projects/cookies/trials", Some(body.clone())).await;
        assert_eq!((s, headers["x-amzn-errortype"].to_str().unwrap()), (status, code), "{body}: {v}");
    }
    let (s, _, _) = call(h, "GET", "/projects/nope/trials", None).await;
    assert_eq!(s, 404);
    let unsigned = reqwest::get(format!("{}/vigil/v1/projects/cookies/trials", h.base)).await.unwrap();
    assert_eq!(unsigned.status(), 403, "the extension is signed like the LFV API");

    let done = wait(h, "/projects/cookies/trials/week%2048", "Trial").await;
    assert_eq!(done["Trial"]["Status"], "COMPLETED", "{done}");
    let images = done["Images"].as_array().unwrap();
    assert_eq!(images.len(), evaluated.len());
    for im in images {
        let src = im["Source"].as_str().unwrap();
        assert_eq!(im["IsAnomalous"].as_bool(), Some(evaluated[src]), "{src}: the trial agrees with the evaluation");
        assert!(im["Confidence"].as_f64().unwrap() >= 0.5);
    }
    assert_eq!(done["Trial"]["ProcessedCount"], images.len());

    // The console's view has the heat map of every image, served from the blob store.
    use app::api::trials::TrialBackend;
    let console = vigil::console::trials::ConsoleTrials { state: h.running.as_ref().unwrap().state.clone() };
    let detail = console.trial("cookies", "week 48").await.unwrap();
    let heat = detail.images[0].heat_map.clone().expect("a heat map");
    let png = h.http().get(format!("{}/media/{heat}", h.base)).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    assert!(detail.images.iter().all(|i| i.mask.is_some()), "a segmentation model's trial keeps its masks");

    // Verify: two correct, one incorrect (its label flips when added), the rest unverified.
    let seqs: Vec<i64> = images.iter().map(|i| i["Image"].as_i64().unwrap()).collect();
    let (s, v, _) = call(h, "POST", "/projects/cookies/trials/week%2048/verify", Some(json!({"Images": [seqs[0], seqs[1]], "Verdict": "CORRECT"}))).await;
    assert_eq!((s, v["Changed"].as_u64()), (200, Some(2)), "{v}");
    let (s, v, _) = call(h, "POST", "/projects/cookies/trials/week%2048/verify", Some(json!({"Images": [seqs[2]], "Verdict": "INCORRECT"}))).await;
    assert_eq!((s, v["Changed"].as_u64()), (200, Some(1)), "{v}");
    let (s, _, _) = call(h, "POST", "/projects/cookies/trials/week%2048/verify", Some(json!({"Images": [seqs[3]], "Verdict": "MAYBE"}))).await;
    assert_eq!(s, 400);
    let before = h.client.describe_dataset().project_name("cookies").dataset_type("train").send().await.unwrap();
    let before = before.dataset_description.unwrap().image_stats.unwrap();
    let (s, v, _) = call(h, "POST", "/projects/cookies/trials/week%2048/add-to-dataset", Some(json!({"DatasetType": "train"}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["Added"].as_u64(), v["Unverified"].as_u64()), (Some(3), Some(images.len() as u64 - 3)));
    let after = h.client.describe_dataset().project_name("cookies").dataset_type("train").send().await.unwrap();
    let after = after.dataset_description.unwrap().image_stats.unwrap();
    assert_eq!(after.total(), before.total().map(|n| n + 3));
    let flipped = images[2]["Source"].as_str().unwrap();
    let expected_label = if evaluated[flipped] { "normal" } else { "anomaly" };
    let entries = h.client.list_dataset_entries().project_name("cookies").dataset_type("train").source_ref_contains(flipped.rsplit('/').next().unwrap()).send().await.unwrap();
    let line: Value = serde_json::from_str(&entries.dataset_entries()[0]).unwrap();
    let class = line.as_object().unwrap().iter().find_map(|(k, v)| k.ends_with("-metadata").then(|| v["class-name"].as_str()).flatten()).unwrap().to_string();
    assert_eq!(class, expected_label, "an image marked incorrect is added with the other label: {line}");
    let detail = console.trial("cookies", "week 48").await.unwrap();
    assert_eq!(detail.images.iter().filter(|i| i.entry.as_ref().is_some_and(|(t, _)| t == "train")).count(), 3, "added images link to the canvas");

    // A trial over an S3 prefix reads only the images under it.
    for (i, key) in ["normal/normal-10.jpg", "anomaly/anomaly-6.jpg", "normal/normal-11.jpg"].iter().enumerate() {
        s3.put(DATA, &format!("incoming/{i}.jpg"), small(key)).await;
    }
    s3.put(DATA, "incoming/readme.txt", b"not an image".to_vec()).await;
    let (s, v, _) = call(h, "POST", "/projects/cookies/trials", Some(json!({"TrialName": "incoming", "ModelVersion": "1", "Source": format!("s3://{DATA}/incoming/")}))).await;
    assert_eq!(s, 202, "{v}");
    let done = wait(h, "/projects/cookies/trials/incoming", "Trial").await;
    assert_eq!((done["Trial"]["Status"].as_str(), done["Images"].as_array().unwrap().len()), (Some("COMPLETED"), 3), "{done}");
    // The console's try runs on the same trial lane and counts too; a broken image is refused with a 400.
    use app::api::models::ModelBackend;
    let models = vigil::console::models::ConsoleModels { state: h.running.as_ref().unwrap().state.clone() };
    let tried = models.try_image("cookies", 1, small("anomaly/anomaly-6.jpg")).await.unwrap();
    assert!(tried.heat_map.starts_with("data:image/png;base64,"), "the try shows a heat map");
    let refused = models.try_image("cookies", 1, b"not an image".to_vec()).await.unwrap_err();
    assert_eq!(refused.status, 400, "{refused:?}");
    let trial_detections = evaluated.len() as u64 + 3 + 1;
    let (s, v, _) = call(h, "GET", "/projects/cookies/trials", None).await;
    assert_eq!((s, v["Trials"].as_array().unwrap().len()), (200, 2));

    // Batches through the hosted model: to a download, from a folder on the server, and to S3.
    let (s, v, headers) = call(h, "POST", "/projects/cookies/models/2/batches", Some(json!({"Source": format!("s3://{DATA}/incoming/"), "Output": "download"}))).await;
    assert_eq!((s, headers["x-amzn-errortype"].to_str().unwrap()), (409, "ConflictException"), "a batch needs a hosted model: {v}");
    let (s, v, _) = call(h, "POST", "/projects/cookies/models/1/batches", Some(json!({"Source": "/etc", "Output": "download"}))).await;
    assert_eq!(s, 400, "a folder outside VIGIL_IMPORT_ROOT: {v}");
    let (s, v, _) = call(h, "POST", "/projects/cookies/models/1/batches", Some(json!({"Source": format!("s3://{DATA}/incoming/"), "Output": "download"}))).await;
    assert_eq!(s, 202, "{v}");
    let id = v["Batch"]["BatchId"].as_str().unwrap().to_string();
    let done = wait(h, &format!("/projects/cookies/batches/{id}"), "Batch").await;
    assert_eq!(done["Batch"]["Status"], "COMPLETED", "{done}");
    let r = h.signed("GET", &format!("/vigil/v1/projects/cookies/batches/{id}/results"), None, Vec::new()).await;
    assert_eq!(r.status(), 200);
    let zip_bytes = r.bytes().await.unwrap().to_vec();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes.clone())).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("results.jsonl").unwrap(), &mut text).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    for l in &lines {
        assert_eq!(l["DetectAnomalyResult"]["Source"]["Type"], "direct", "{l}");
        assert!(l["DetectAnomalyResult"]["AnomalyMask"].is_null(), "masks are files, not base64: {l}");
        let mask = l["AnomalyMask"].as_str().unwrap();
        assert!(zip.by_name(mask).is_ok(), "{mask} is in the zip");
    }
    // The console offers the same file to a signed-in user.
    let console_zip = h.http().get(format!("{}/batches/cookies/{id}.zip", h.base)).send().await.unwrap();
    assert_eq!(console_zip.status(), 200);
    assert_eq!(console_zip.bytes().await.unwrap().to_vec(), zip_bytes);
    assert_eq!(reqwest::get(format!("{}/batches/cookies/{id}.zip", h.base)).await.unwrap().status(), 401, "no session, no results");

    let folder = s3.root.path().join(DATA).join("incoming");
    let (s, v, _) = call(h, "POST", "/projects/cookies/models/1/batches", Some(json!({"Source": folder.to_str().unwrap(), "Output": format!("s3://{OUT}/batches/")}))).await;
    assert_eq!(s, 202, "{v}");
    let id2 = v["Batch"]["BatchId"].as_str().unwrap().to_string();
    let done = wait(h, &format!("/projects/cookies/batches/{id2}"), "Batch").await;
    assert_eq!(done["Batch"]["Status"], "COMPLETED", "{done}");
    let obj = s3.client.get_object().bucket(OUT).key(format!("batches/{id2}/results.jsonl")).send().await.unwrap();
    let text = String::from_utf8(obj.body.collect().await.unwrap().to_vec()).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains("\"Image\":\"0.jpg\""), "{text}");
    let masks = s3.client.list_objects_v2().bucket(OUT).prefix(format!("batches/{id2}/masks/")).send().await.unwrap();
    assert_eq!(masks.contents().len(), 3);
    let (s, v, _) = call(h, "GET", &format!("/projects/cookies/batches/{id2}/results"), None).await;
    assert_eq!(s, 409, "results written to S3 are not offered for download: {v}");
    let (s, v, _) = call(h, "GET", "/projects/cookies/batches", None).await;
    assert_eq!((s, v["Batches"].as_array().unwrap().len()), (200, 2));

    // Deleting a trial and a batch.
    let (s, _, _) = call(h, "DELETE", "/projects/cookies/trials/incoming", None).await;
    assert_eq!(s, 200);
    let (s, _, _) = call(h, "GET", "/projects/cookies/trials/incoming", None).await;
    assert_eq!(s, 404);
    let state = h.running.as_ref().unwrap().state.clone();
    // The results are a blob (every replica serves them), named by the batch's row; no file stays behind.
    let output = h_output_hash(&state, &id).await.expect("the batch's results are a blob");
    assert_eq!(state.blobs.get(&output).unwrap(), zip_bytes);
    let zip_path = vigil::trials::download_path(&state, &h_batch_id(&state, &id).await);
    assert!(!zip_path.exists());
    let (s, _, _) = call(h, "DELETE", &format!("/projects/cookies/batches/{id}"), None).await;
    assert_eq!(s, 200);
    // Deleting a batch leaves its results to blob collection, which no longer finds them referenced.
    let removed = vigil::collect_blob_garbage(&state.db, &state.blobs, std::time::Duration::ZERO).await.unwrap();
    assert!(removed.iter().any(|l| l.hash == output), "{removed:?}");
    // Result files of batches from before results were blobs, whose batch is gone, are collected.
    std::fs::create_dir_all(zip_path.parent().unwrap()).unwrap();
    let orphan = zip_path.with_file_name("0123456789abcdef0123456789abcdef.zip");
    std::fs::write(&orphan, b"PK").unwrap();
    assert_eq!(vigil::trials::remove_orphan_downloads(&state).await.unwrap(), 1);
    assert!(!orphan.exists());
    trial_detections + 6
}

/// The blob holding a batch's results, from the id users see.
async fn h_output_hash(state: &vigil::state::AppState, name: &str) -> Option<String> {
    let row: (Option<String>,) = sqlx::query_as("select output_hash from trial where name = $1").bind(name).fetch_one(&state.db.pool).await.unwrap();
    row.0
}

/// The internal id of a batch (its results file is named by it), from the id users see.
async fn h_batch_id(state: &vigil::state::AppState, name: &str) -> String {
    let row: (String,) = sqlx::query_as("select id from trial where name = $1").bind(name).fetch_one(&state.db.pool).await.unwrap();
    row.0
}
