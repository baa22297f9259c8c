//! The engine end to end on a small real subset (downscaled LFV cookie images in `fixtures/cookies-small`):
//! training, detection in LFV's shape, evaluation, the artifact's save → load parity, and the CLI.
//! One torch thread, as every test.

use crate::common;

use std::path::PathBuf;
use vigil::engine::{self, artifact, image_io, AnomalyLabel, Backbone, DetectOptions, ImageSource, Model, Sample, TrainOptions, TrainSet};

fn fixtures() -> PathBuf {
    common::repo_root().join("server/tests/fixtures/cookies-small")
}

fn sample(kind: &str, n: u32) -> Sample {
    let anomalous = kind == "anomaly";
    let image = fixtures().join(kind).join(format!("{kind}-{n}.jpg"));
    let mask = anomalous.then(|| ImageSource::File(fixtures().join("masks").join(format!("anomaly-{n}.png"))));
    Sample { id: format!("{kind}-{n}"), image: ImageSource::File(image), anomalous, mask }
}

fn labels() -> Vec<AnomalyLabel> {
    vec![AnomalyLabel { name: "cracked".into(), color: "#23A436".into() }]
}

#[test]
fn trains_detects_evaluates_and_reloads_exactly() {
    engine::set_threads(1);
    let b = Backbone::load(&common::backbone_path()).expect("backbone produced by setup.sh");
    let train: Vec<Sample> = (2..=11).map(|n| sample("normal", n)).chain((2..=7).map(|n| sample("anomaly", n))).collect();
    let test: Vec<Sample> = [12, 13].map(|n| sample("normal", n)).into_iter().chain([8, 9].map(|n| sample("anomaly", n))).collect();
    let set = TrainSet { train, test: Some(test.clone()), labels: labels() };
    let mut stages = Vec::new();
    let (model, ev) = engine::train(&b, &set, &TrainOptions::default(), &mut |p| stages.push(p.stage)).unwrap();
    assert!(stages.contains(&engine::Stage::Features) && stages.contains(&engine::Stage::Evaluation));

    // The model: input size from the images, a segmentation head, an F1 threshold (6 anomalies ≥ 3).
    assert_eq!(model.input_size(), (192, 256));
    assert!(model.header.segmentation);
    assert_eq!(model.header.threshold_rule, engine::threshold::ThresholdRule::F1Optimal);

    // The anomalies score above the normals on held-out images.
    assert_eq!(ev.source, "test_set");
    assert_eq!((ev.n_normal, ev.n_anomaly), (2, 2));
    let max_normal = ev.images.iter().filter(|r| !r.anomalous).map(|r| r.score).fold(f32::MIN, f32::max);
    let min_anomaly = ev.images.iter().filter(|r| r.anomalous).map(|r| r.score).fold(f32::MAX, f32::min);
    assert!(min_anomaly > max_normal, "anomalies {min_anomaly} vs normals {max_normal}: {:?}", ev.images);
    assert_eq!(ev.image_auroc, Some(1.0));
    assert!(ev.pixel_auroc.unwrap() > 0.8, "pixel AUROC {:?}", ev.pixel_auroc);
    assert_eq!(ev.labels.len(), 1);
    for r in &ev.images {
        assert!(r.confidence >= 0.5 && r.confidence <= 1.0);
    }

    // Detection in LFV's shape: background first, the label's colour, areas summing to 1, a PNG mask the
    // size of the input image holding only the background and label colours.
    let img = image_io::decode_rgb(&std::fs::read(fixtures().join("anomaly/anomaly-8.jpg")).unwrap()).unwrap();
    let d = model.detect(&b, &img).unwrap();
    assert!(d.is_anomalous);
    let j = vigil::lfv::detect_result(&d);
    let r = &j["DetectAnomalyResult"];
    assert_eq!(r["Source"]["Type"], "direct");
    assert_eq!(r["IsAnomalous"], true);
    let anomalies = r["Anomalies"].as_array().unwrap();
    assert_eq!(anomalies[0]["Name"], "background");
    assert_eq!(anomalies[0]["PixelAnomaly"]["Color"], "#FFFFFF");
    let total: f64 = anomalies.iter().map(|a| a["PixelAnomaly"]["TotalPercentageArea"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-4, "areas sum to {total}");
    let mask = image::load_from_memory(d.anomaly_mask.as_ref().unwrap()).unwrap().to_rgb8();
    assert_eq!(mask.dimensions(), img.dimensions());
    let cracked = mask.pixels().filter(|p| p.0 == [0x23, 0xA4, 0x36]).count();
    assert!(mask.pixels().all(|p| p.0 == [255, 255, 255] || p.0 == [0x23, 0xA4, 0x36]));
    if let Some(a) = anomalies.iter().find(|a| a["Name"] == "cracked") {
        assert_eq!(a["PixelAnomaly"]["Color"], "#23A436");
        let area = a["PixelAnomaly"]["TotalPercentageArea"].as_f64().unwrap();
        assert!((area - cracked as f64 / (192.0 * 256.0)).abs() < 1e-3);
    }
    assert_eq!(d.heat_map.len(), 192 * 256);

    // LFV's path (no heat map) computes exact patch scores only where they can change the mask: the same
    // verdict, score and mask as from every patch's exact score, on normal and anomalous images.
    for s in &test {
        let img = s.image.load().unwrap();
        let (full, fast) = (model.detect(&b, &img).unwrap(), model.detect_with(&b, &img, DetectOptions { heat_map: false }).unwrap());
        assert!((full.score - fast.score).abs() <= 1e-5 * full.score.abs().max(1.0), "{}: {} vs {}", s.id, full.score, fast.score);
        assert_eq!(full.is_anomalous, fast.is_anomalous);
        let decode = |d: &engine::Detection| image::load_from_memory(d.anomaly_mask.as_ref().unwrap()).unwrap().to_rgb8();
        let (a, c) = (decode(&full), decode(&fast));
        let differ = a.pixels().zip(c.pixels()).filter(|(p, q)| p != q).count();
        assert!(differ * 10_000 <= (a.width() * a.height()) as usize, "{}: {differ} mask pixels differ", s.id);
        let names = |d: &engine::Detection| d.anomalies.as_ref().unwrap().iter().map(|a| a.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&full), names(&fast));
    }

    // An image of another size is resized to the model's input; the mask comes back at its own size.
    let small = image::imageops::resize(&img, 96, 128, image::imageops::FilterType::Triangle);
    let ds = model.detect(&b, &small).unwrap();
    assert_eq!(image::load_from_memory(ds.anomaly_mask.as_ref().unwrap()).unwrap().width(), 96);

    // An empty image is an error, not a panic.
    assert!(model.detect(&b, &image::RgbImage::new(0, 0)).is_err());

    // Save → load reproduces every output exactly.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.vigil");
    model.save(&path).unwrap();
    let loaded = Model::load(&path).unwrap();
    assert_eq!(loaded.header.threshold.to_bits(), model.header.threshold.to_bits());
    for s in &test {
        let img = s.image.load().unwrap();
        let (a, c) = (model.detect(&b, &img).unwrap(), loaded.detect(&b, &img).unwrap());
        assert_eq!(a.score.to_bits(), c.score.to_bits(), "{}", s.id);
        assert_eq!(a.confidence.to_bits(), c.confidence.to_bits());
        assert_eq!(a.heat_map, c.heat_map);
        assert_eq!(a.anomaly_mask, c.anomaly_mask);
        assert_eq!(vigil::lfv::detect_result(&a), vigil::lfv::detect_result(&c));
    }
    // One model, several threads at once: the same scores as one at a time.
    let sequential: Vec<u32> = test.iter().map(|s| loaded.detect(&b, &s.image.load().unwrap()).unwrap().score.to_bits()).collect();
    let concurrent: Vec<u32> = std::thread::scope(|sc| {
        let handles: Vec<_> = test.iter().map(|s| sc.spawn(|| loaded.detect(&b, &s.image.load().unwrap()).unwrap().score.to_bits())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(sequential, concurrent);
    let ev2 = loaded.evaluate(&b, &test, &mut |_, _| {}).unwrap();
    let s1: Vec<u32> = ev.images.iter().map(|r| r.score.to_bits()).collect();
    let s2: Vec<u32> = ev2.images.iter().map(|r| r.score.to_bits()).collect();
    assert_eq!(s1, s2, "evaluation after reload matches training-time evaluation");

    // A damaged file is an error, not a panic.
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xFF;
    assert!(Model::from_bytes(&bytes).is_err());
    assert!(Model::from_bytes(&bytes[..100]).is_err());
}

#[test]
fn too_few_normals_and_bad_inputs_are_errors() {
    engine::set_threads(1);
    let b = Backbone::load(&common::backbone_path()).unwrap();
    let set = TrainSet { train: vec![sample("normal", 2), sample("anomaly", 2)], test: None, labels: vec![] };
    let e = engine::train(&b, &set, &TrainOptions::default(), &mut |_| {}).err().expect("one normal is not enough");
    assert!(e.to_string().contains("at least 2 normal"), "{e}");
    let bad_colour = TrainSet {
        train: vec![sample("normal", 2), sample("normal", 3)],
        test: None,
        labels: vec![AnomalyLabel { name: "x".into(), color: "green".into() }],
    };
    assert!(engine::train(&b, &bad_colour, &TrainOptions::default(), &mut |_| {}).is_err());
    let missing = TrainSet {
        train: vec![sample("normal", 2), Sample { id: "x".into(), image: ImageSource::File("/nonexistent.jpg".into()), anomalous: false, mask: None }],
        test: None,
        labels: vec![],
    };
    assert!(engine::train(&b, &missing, &TrainOptions::default(), &mut |_| {}).is_err());
}

#[test]
fn command_line_train_eval_detect() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("cookies.vigil");
    let vigil = env!("CARGO_BIN_EXE_vigil");
    let backbone = common::backbone_path();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(vigil)
            .args(args)
            .env("VIGIL_BACKBONE", &backbone)
            .env("VIGIL_TORCH_THREADS", "1")
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let data = fixtures();
    let (ok, _, err) = run(&["train", data.to_str().unwrap(), "--out", model.to_str().unwrap(), "--no-segmentation"]);
    assert!(ok, "train failed: {err}");
    assert!(model.is_file());

    let (ok, out, err) = run(&["eval", "--model", model.to_str().unwrap(), data.to_str().unwrap(), "--json"]);
    assert!(ok, "eval failed: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for key in ["image_auroc", "average_precision", "precision", "recall", "f1", "threshold", "n_normal", "n_anomaly", "pixel_auroc"] {
        assert!(v.get(key).is_some(), "missing {key} in {out}");
    }
    assert_eq!(v["n_normal"], 12);
    assert_eq!(v["n_anomaly"], 8);

    let img = data.join("anomaly/anomaly-9.jpg");
    let (ok, out, err) = run(&["detect", "--model", model.to_str().unwrap(), img.to_str().unwrap()]);
    assert!(ok, "detect failed: {err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["DetectAnomalyResult"]["Confidence"].as_f64().unwrap() >= 0.5);
    assert!(v["DetectAnomalyResult"].get("Anomalies").is_none(), "classification model: no Anomalies");

    // The MVTec AD layout (test part: test/good, test/<defect>, ground_truth/<defect>/<stem>_mask.png).
    let mv = dir.path().join("mvtec");
    for d in ["train/good", "test/good", "test/crack", "ground_truth/crack"] {
        std::fs::create_dir_all(mv.join(d)).unwrap();
    }
    for n in [2, 3, 4] {
        std::fs::copy(data.join(format!("normal/normal-{n}.jpg")), mv.join(format!("train/good/{n:03}.jpg"))).unwrap();
    }
    for n in [12, 13] {
        std::fs::copy(data.join(format!("normal/normal-{n}.jpg")), mv.join(format!("test/good/{n:03}.jpg"))).unwrap();
    }
    for n in [8, 9] {
        std::fs::copy(data.join(format!("anomaly/anomaly-{n}.jpg")), mv.join(format!("test/crack/{n:03}.jpg"))).unwrap();
        // MVTec's own convention: a one-channel PNG, white defect on black.
        let colour = image::open(data.join(format!("masks/anomaly-{n}.png"))).unwrap().to_rgb8();
        let binary = image::GrayImage::from_fn(colour.width(), colour.height(), |x, y| {
            let p = colour.get_pixel(x, y).0;
            let is_label = p != [0, 0, 0] && p != [255, 255, 255];
            image::Luma([if is_label { 255 } else { 0 }])
        });
        assert!(binary.pixels().any(|p| p.0[0] == 255), "fixture mask {n} marks something");
        binary.save(mv.join(format!("ground_truth/crack/{n:03}_mask.png"))).unwrap();
    }
    let (ok, out, err) = run(&["eval", "--model", model.to_str().unwrap(), mv.to_str().unwrap(), "--json"]);
    assert!(ok, "eval on MVTec layout failed: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["n_normal"].as_u64(), v["n_anomaly"].as_u64()), (Some(2), Some(2)));
    let pixel = v["pixel_auroc"].as_f64();
    assert!(pixel.is_some_and(|p| p > 0.5), "pixel AUROC from the MVTec masks of a classification model: {out}");

    // Readable errors, no panics.
    let (ok, _, err) = run(&["detect", "--model", model.to_str().unwrap(), "/nonexistent.png"]);
    assert!(!ok && err.contains("nonexistent") && !err.contains("panicked"), "{err}");
    let (ok, _, err) = run(&["eval", "--model", "/nonexistent.vigil", data.to_str().unwrap()]);
    assert!(!ok && !err.contains("panicked"), "{err}");
    let (ok, _, err) = run(&["detect", "--model", img.to_str().unwrap(), img.to_str().unwrap()]);
    assert!(!ok && err.contains("not a Vigil model"), "{err}");
}

fn small_set() -> TrainSet {
    let train: Vec<Sample> = (2..=9).map(|n| sample("normal", n)).collect();
    let test: Vec<Sample> = [12, 13].map(|n| sample("normal", n)).into_iter().chain([8, 9].map(|n| sample("anomaly", n))).collect();
    TrainSet { train, test: Some(test), labels: vec![] }
}

#[test]
fn heat_map_only_when_asked_and_the_same_verdict() {
    engine::set_threads(1);
    let b = Backbone::load(&common::backbone_path()).unwrap();
    let (model, _) = engine::train(&b, &small_set(), &TrainOptions::default(), &mut |_| {}).unwrap();
    // Normal images only: the threshold holds a false-positive rate on out-of-fold normal scores.
    assert_eq!(model.header.threshold_rule, engine::threshold::ThresholdRule::NormalQuantile);
    assert_eq!(model.header.target_fpr, Some(TrainOptions::default().normal_fpr));
    let img = sample("anomaly", 9).image.load().unwrap();
    let full = model.detect(&b, &img).unwrap();
    let fast = model.detect_with(&b, &img, DetectOptions { heat_map: false }).unwrap();
    // Without the heat map the image score comes from the pruned exact search: equal up to float rounding.
    assert!((full.score - fast.score).abs() <= 1e-5 * full.score.abs().max(1.0), "{} vs {}", full.score, fast.score);
    assert_eq!(full.is_anomalous, fast.is_anomalous);
    assert!((full.confidence - fast.confidence).abs() < 1e-4);
    assert_eq!(full.heat_map.len(), (full.heat_width * full.heat_height) as usize);
    assert!(!full.heat_map.is_empty());
    assert!(fast.heat_map.is_empty() && fast.heat_width == 0 && fast.heat_height == 0);
    let asked = model.detect_with(&b, &img, DetectOptions { heat_map: true }).unwrap();
    assert_eq!(asked.heat_map, full.heat_map);
}

#[test]
fn backbone_checksum_is_recorded_and_checked_and_old_files_still_load() {
    engine::set_threads(1);
    let b = Backbone::load(&common::backbone_path()).unwrap();
    assert_eq!(b.checksum().len(), 64);
    // A model as version 1 wrote it: no residual column, no Gaussian model, none of the newer header fields.
    let opts = TrainOptions { pca_residual: false, gaussian: false, ..Default::default() };
    let (model, _) = engine::train(&b, &small_set(), &opts, &mut |_| {}).unwrap();
    assert_eq!(model.header.backbone.sha256.as_deref(), Some(b.checksum()));
    model.check_backbone(&b).unwrap();
    let img = sample("anomaly", 8).image.load().unwrap();
    let want = model.detect(&b, &img).unwrap();

    let rewrite = |bytes: &[u8], version: u32, edit: &dyn Fn(&mut serde_json::Value)| -> Vec<u8> {
        let (mut header, tensors) = artifact::from_bytes(bytes).unwrap();
        edit(&mut header);
        let entries: Vec<(String, tch::Tensor)> = tensors.into_iter().collect();
        let refs: Vec<(&str, &tch::Tensor)> = entries.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mut out = artifact::to_bytes(&header, &refs).unwrap();
        out[8..12].copy_from_slice(&version.to_le_bytes());
        out
    };
    let bytes = model.to_bytes().unwrap();
    // A different backbone file: refused at detection (and by check_backbone).
    let other = rewrite(&bytes, artifact::FORMAT_VERSION, &|h| h["backbone"]["sha256"] = "00".repeat(32).into());
    let m = Model::from_bytes(&other).unwrap();
    assert!(matches!(m.check_backbone(&b), Err(engine::Error::BackboneMismatch { .. })));
    let e = m.detect(&b, &img).err().expect("detection with another backbone file is refused");
    assert!(e.to_string().contains("backbone"), "{e}");
    assert!(m.evaluate(&b, &small_set().test.unwrap(), &mut |_, _| {}).is_err());
    // Version 1: the newer fields are absent; it loads and gives the same verdicts (the resize filter
    // defaults to version 1's, so only the filter is pinned here to keep the comparison exact).
    let v1 = rewrite(&bytes, 1, &|h| {
        h["backbone"].as_object_mut().unwrap().remove("sha256");
        h.as_object_mut().unwrap().remove("target_fpr");
        h["patchcore"].as_object_mut().unwrap().remove("pca_residual");
        let sc = h["score"].as_object_mut().unwrap();
        for k in ["supervised_weight", "gaussian_weight", "patchcore_scale", "gaussian_scale", "head_stats"] {
            sc.remove(k);
        }
        let t = h["training"].as_object_mut().unwrap();
        for k in ["oof_auroc_by_weight", "oof_auroc_gaussian", "oof_auroc_by_gaussian_weight", "gaussian_shrinkage"] {
            t.remove(k);
        }
        let o = t["options"].as_object_mut().unwrap();
        for k in ["pca_residual", "normal_fpr", "gaussian", "gaussian_weight", "head_stats"] {
            o.remove(k);
        }
        h["format_version"] = 1.into();
    });
    let old = Model::from_bytes(&v1).unwrap();
    assert!(old.header.backbone.sha256.is_none());
    old.check_backbone(&b).unwrap();
    assert_eq!(old.detect(&b, &img).unwrap().score.to_bits(), want.score.to_bits());
    // A version from the future is refused with a clear message.
    let future = rewrite(&bytes, artifact::FORMAT_VERSION + 1, &|_| {});
    assert!(Model::from_bytes(&future).err().unwrap().to_string().contains("version"));

    // Saving is atomic and leaves no temporary file behind, also when overwriting.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.vigil");
    model.save(&path).unwrap();
    model.save(&path).unwrap();
    let names: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, vec!["m.vigil".to_string()]);
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    // Into a folder that does not exist: an error, and nothing left behind.
    assert!(model.save(&dir.path().join("missing/m.vigil")).is_err());
}

/// A labelled set large enough for the supervised score (≥ 10 anomalies): the fixtures and their mirror images.
fn labelled_set() -> TrainSet {
    let mirror = |s: Sample| -> Sample {
        let img = image::imageops::flip_horizontal(&s.image.load().unwrap());
        Sample { id: format!("{}-mirrored", s.id), image: ImageSource::Decoded(std::sync::Arc::new(img)), anomalous: s.anomalous, mask: None }
    };
    let base: Vec<Sample> = (2..=11).map(|n| sample("normal", n)).chain((2..=7).map(|n| sample("anomaly", n))).map(|mut s| {
        s.mask = None;
        s
    }).collect();
    let train: Vec<Sample> = base.iter().cloned().chain(base.iter().cloned().map(mirror)).collect();
    let test: Vec<Sample> = [12, 13].map(|n| sample("normal", n)).into_iter().chain([8, 9].map(|n| sample("anomaly", n))).collect();
    TrainSet { train, test: Some(test), labels: vec![] }
}

#[test]
fn gaussian_fusion_and_supervised_heads_with_image_scores_reload_exactly() {
    engine::set_threads(1);
    let b = Backbone::load(&common::backbone_path()).unwrap();
    // Forced weights so that every part of the score is exercised: the Gaussian fused with PatchCore, the
    // supervised heads taking both image scores, blended half and half.
    let opts = TrainOptions { gaussian_weight: Some(0.5), supervised_weight: Some(0.5), ..Default::default() };
    let (model, ev) = engine::train(&b, &labelled_set(), &opts, &mut |_| {}).unwrap();
    let sc = &model.header.score;
    assert_eq!(sc.kind, "blend");
    assert_eq!(sc.gaussian_weight, Some(0.5));
    assert!(sc.head_stats && sc.patchcore_scale.is_some() && sc.gaussian_scale.is_some());
    let t = &model.header.training;
    assert!(t.oof_auroc_gaussian.is_some() && t.gaussian_shrinkage.is_some_and(|d| (0.0..=1.0).contains(&d)));
    assert_eq!(ev.image_auroc, Some(1.0), "{:?}", ev.images);
    let bytes = model.to_bytes().unwrap();
    let loaded = Model::from_bytes(&bytes).unwrap();
    for s in &labelled_set().test.unwrap() {
        let img = s.image.load().unwrap();
        for heat_map in [false, true] {
            let o = DetectOptions { heat_map };
            let (a, c) = (model.detect_with(&b, &img, o).unwrap(), loaded.detect_with(&b, &img, o).unwrap());
            assert_eq!(a.score.to_bits(), c.score.to_bits(), "{}", s.id);
        }
    }
    // A file whose score needs the Gaussian model but lacks it is refused, not scored wrongly.
    let (mut header, tensors) = artifact::from_bytes(&bytes).unwrap();
    let entries: Vec<(String, tch::Tensor)> = tensors.into_iter().filter(|(n, _)| !n.starts_with("gauss.")).collect();
    let refs: Vec<(&str, &tch::Tensor)> = entries.iter().map(|(n, t)| (n.as_str(), t)).collect();
    header.as_object_mut().unwrap().remove("tensors");
    let e = Model::from_bytes(&artifact::to_bytes(&header, &refs).unwrap()).err().expect("missing Gaussian model");
    assert!(e.to_string().contains("Gaussian"), "{e}");

    // The weights can also be chosen automatically; an unknown forced weight is an input error.
    let bad = TrainOptions { supervised_weight: Some(0.3), ..Default::default() };
    assert!(matches!(engine::train(&b, &labelled_set(), &bad, &mut |_| {}), Err(engine::Error::Input(_))));
    // Without the Gaussian model: the score is PatchCore's (or the older blend), as version 2 trained it.
    let plain = TrainOptions { gaussian: false, ..Default::default() };
    let (m, _) = engine::train(&b, &small_set(), &plain, &mut |_| {}).unwrap();
    assert_eq!((m.header.score.kind.as_str(), m.header.score.gaussian_weight), ("patchcore", None));
    let (m, _) = engine::train(&b, &small_set(), &TrainOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(m.header.score.kind, "fused");
    assert_eq!(m.header.score.gaussian_weight, Some(engine::train::DEFAULT_GAUSSIAN_WEIGHT));
}

#[test]
fn mirrored_normals_in_the_bank_when_asked() {
    engine::set_threads(1);
    let b = Backbone::load(&common::backbone_path()).unwrap();
    let set = small_set();
    let plain_opts = TrainOptions { bank_flips: Some(false), bank_turns: Some(false), ..TrainOptions::default() };
    let (plain, _) = engine::train(&b, &set, &plain_opts, &mut |_| {}).unwrap();
    assert!(!plain.header.training.bank_flips && !plain.header.training.bank_turns);
    let opts = TrainOptions { bank_flips: Some(true), ..plain_opts.clone() };
    let (flipped, _) = engine::train(&b, &set, &opts, &mut |_| {}).unwrap();
    assert!(flipped.header.training.bank_flips && !flipped.header.training.bank_turns);
    // Both were set, so no mirror test ran.
    assert!(flipped.header.training.mirror_test.is_none());
    // A training normal mirrored left–right: its patches were candidates of the flipped bank only.
    let img = image::imageops::flip_horizontal(&set.train[0].image.load().unwrap());
    let score = |m: &Model| m.detect_with(&b, &img, DetectOptions { heat_map: false }).unwrap().score;
    assert!(score(&flipped) < score(&plain), "mirrored normal: {} with flips vs {} without", score(&flipped), score(&plain));
    // The option survives the file.
    let loaded = Model::from_bytes(&flipped.to_bytes().unwrap()).unwrap();
    assert_eq!(loaded.header.training.options.unwrap().bank_flips, Some(true));
    assert!(loaded.header.training.bank_flips);
    // Turned views too (all eight symmetries, the turned ones of another shape): the mirrored image is still
    // one of the bank's views.
    let opts = TrainOptions { bank_flips: Some(true), bank_turns: Some(true), ..TrainOptions::default() };
    let (all, _) = engine::train(&b, &set, &opts, &mut |_| {}).unwrap();
    assert!(score(&all) < score(&plain), "mirrored normal: {} with every symmetry vs {} without", score(&all), score(&plain));
}

#[test]
fn reweighted_image_score_on_every_path() {
    engine::set_threads(1);
    let b = Backbone::load(&common::backbone_path()).unwrap();
    let set = small_set();
    // Without the Gaussian fusion the score of a normal-only model is PatchCore's own.
    let plain_opts = TrainOptions { gaussian: false, ..TrainOptions::default() };
    let (plain, _) = engine::train(&b, &set, &plain_opts, &mut |_| {}).unwrap();
    let opts = TrainOptions { reweight_neighbours: 9, ..plain_opts.clone() };
    let (rw, _) = engine::train(&b, &set, &opts, &mut |_| {}).unwrap();
    assert_eq!((plain.header.score.kind.as_str(), rw.header.score.kind.as_str()), ("patchcore", "patchcore"));
    assert_eq!(rw.header.patchcore.reweight_neighbours, 9);
    assert_eq!(plain.header.patchcore.reweight_neighbours, 0);
    for img in [sample("anomaly", 9).image.load().unwrap(), sample("normal", 12).image.load().unwrap()] {
        let fast = |m: &Model| m.detect_with(&b, &img, DetectOptions { heat_map: false }).unwrap();
        let (with_heat, without) = (rw.detect(&b, &img).unwrap(), fast(&rw));
        // The heat-map path (every patch searched) and the pruned one reweight the same patch alike.
        assert!((with_heat.score - without.score).abs() <= 1e-5 * without.score.abs().max(1.0), "{} vs {}", with_heat.score, without.score);
        // Same bank (same seeds), so the score is the plain one times a weight in [1 − 1/9, 1) (in f32 the
        // weight can round to 1: the distances' differences are large at this feature scale).
        let p = fast(&plain).score;
        assert!(without.score <= p && without.score >= p * (8.0 / 9.0) * (1.0 - 1e-5), "{} vs plain {p}", without.score);
    }
    // The setting survives the file and gives the same score.
    let loaded = Model::from_bytes(&rw.to_bytes().unwrap()).unwrap();
    let img = sample("anomaly", 9).image.load().unwrap();
    assert_eq!(loaded.detect(&b, &img).unwrap().score, rw.detect(&b, &img).unwrap().score);
}

/// 48 generated normal images, 128 px: with `oriented`, sawtooth ramps along both axes (each period a slow rise
/// and a sharp fall: mirrored or turned, the ramps run the other way) at a random phase; without, grey noise in
/// 4×4 blocks (the same statistics in every direction).
fn generated_normals(oriented: bool) -> TrainSet {
    let mut rng = engine::coreset::SplitMix64::new(if oriented { 5 } else { 6 });
    let train = (0..48)
        .map(|n| {
            let (px, py) = (rng.below(16) as u32, rng.below(16) as u32);
            let noise: Vec<u8> = (0..32 * 32).map(|_| rng.below(256) as u8).collect();
            let img = image::RgbImage::from_fn(128, 128, |x, y| {
                let v = if oriented {
                    (((x + px) % 16) * 8 + ((y + py) % 16) * 7) as u8
                } else {
                    noise[(y / 4 * 32 + x / 4) as usize]
                };
                image::Rgb([v, v, v])
            });
            Sample { id: format!("n{n}"), image: ImageSource::Decoded(std::sync::Arc::new(img)), anomalous: false, mask: None }
        })
        .collect();
    TrainSet { train, test: None, labels: vec![] }
}

#[test]
fn the_mirror_test_puts_views_in_the_bank_only_for_surfaces_without_orientation() {
    engine::set_threads(1);
    let b = Backbone::load(&common::backbone_path()).unwrap();
    let mut flip_auroc = Vec::new();
    for oriented in [true, false] {
        let (m, _) = engine::train(&b, &generated_normals(oriented), &TrainOptions::default(), &mut |_| {}).unwrap();
        let t = &m.header.training;
        let test = t.mirror_test.clone().expect("48 normals and no setting: the mirror test runs");
        assert_eq!((test.bank_images, test.probed_images), (24, 24));
        let (fa, ta) = (test.flip_auroc.unwrap(), test.turn_auroc.unwrap());
        // The decision follows the figures.
        assert_eq!(t.bank_flips, test.flips_pass(), "oriented {oriented}: flips AUROC {fa}");
        assert_eq!(t.bank_turns, test.turns_pass(), "oriented {oriented}: turns AUROC {ta}");
        // Within one standard deviation of chance (24 images against 72 and 48 views).
        assert_eq!(test.flip_limit, engine::folds::chance_limit(24, 72));
        assert!((test.flip_limit - 0.5684).abs() < 1e-3 && (test.turn_limit - 0.5727).abs() < 1e-3, "{test:?}");
        assert_eq!(t.bank_flips, fa <= test.flip_limit);
        if oriented {
            assert!(fa > 0.9 && ta > 0.9, "mirrored and turned ramps look new to the bank: {fa}, {ta}");
            assert!(!t.bank_flips && !t.bank_turns);
        } else {
            // Noise mirrored or turned is still noise: near chance (the limit is one standard deviation above
            // 0.5, so a symmetric surface passes about 5 times in 6; these are within two).
            assert!(fa < 0.64 && ta < 0.645, "noise mirrored or turned is still noise: {fa}, {ta}");
        }
        flip_auroc.push(fa);
    }
    assert!(flip_auroc[0] > flip_auroc[1] + 0.3, "{flip_auroc:?}");
    // A setting is obeyed and skips the test.
    let opts = TrainOptions { bank_flips: Some(false), bank_turns: Some(true), ..TrainOptions::default() };
    let (m, _) = engine::train(&b, &generated_normals(false), &opts, &mut |_| {}).unwrap();
    assert!(m.header.training.mirror_test.is_none() && !m.header.training.bank_flips && m.header.training.bank_turns);
}
