//! `vigil bench`: accuracy and speed of the engine on every data set of a folder.
//!
//! Per data set: image AUROC, AP, F1 on its test images; pixel AUROC and per-label IoU by k-fold over the
//! masked training anomalies (when there are masks); fit time; single-image detection latency (p50 / p99);
//! batched throughput; the bare backbone forward at the same input size; peak memory (VmHWM, process-wide,
//! so it only grows from one data set to the next).

use super::{common, data};
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;
use vigil::config::BenchArgs;
use vigil::engine::{self, Backbone, DetectOptions, Evaluation, Model, Sample, TrainOptions, TrainSet};

fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Finds how to train and test on a data set folder.
fn plan(dir: &Path) -> Result<(TrainSet, bool)> {
    // The LFV cookie set: the relative-path manifest for training (with masks), test-images for testing.
    let cookies = dir.join("computer-vision-defect-detection/cookie-dataset");
    if cookies.is_dir() {
        let manifest = cookies.join("dataset-files/manifests/template.manifest");
        let set = data::load_train(&manifest, Some(&cookies.join("test-images")))?;
        return Ok((set, true));
    }
    // Otherwise the first folder (breadth-first, 4 levels) with a layout `vigil train` reads.
    let mut queue = vec![(dir.to_path_buf(), 0)];
    while !queue.is_empty() {
        let (d, depth) = queue.remove(0);
        let has = |n: &str| d.join(n).is_dir();
        if (has("train") && has("test")) || (has("normal") && has("anomaly")) || d.join("train/good").is_dir() {
            let set = data::load_train(&d, None)?;
            let masks = set.train.iter().any(|s| s.mask.is_some());
            return Ok((set, masks));
        }
        if depth < 4 {
            let mut subs: Vec<PathBuf> = std::fs::read_dir(&d)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
            subs.sort();
            queue.extend(subs.into_iter().map(|p| (p, depth + 1)));
        }
    }
    bail!("{}: no data set layout found", dir.display())
}

pub fn run(a: BenchArgs) -> Result<()> {
    let b = common::backbone(&a.engine)?;
    let threads = tch::get_num_threads();
    let dirs = datasets(&a)?;
    println!("vigil bench: {} data sets, {} torch threads", dirs.len(), threads);
    let mut report = Vec::new();
    for dir in dirs {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("?").to_string();
        let (set, masks) = match plan(&dir) {
            Ok(p) => p,
            Err(e) => {
                println!("{name}: skipped ({e:#})");
                continue;
            }
        };
        println!("== {name}: {} training images, {} test images", set.train.len(), set.test.as_ref().map_or(0, |t| t.len()));
        let opts = common::with_options(TrainOptions::default(), &a.set)?;
        let started = Instant::now();
        let (model, ev) = engine::train(&b, &set, &opts, &mut |_| {})?;
        let train_wall = started.elapsed().as_secs_f64();
        print_model(&model, &ev, train_wall);
        let fit = model.header.training.fit_seconds;
        let (w, h) = model.input_size();

        // Pixel figures by k-fold over the training set (whose anomalies have masks).
        let pixel = if masks && !a.accuracy_only && !a.no_pixel_folds { pixel_folds(&b, &set, &opts)? } else { serde_json::Value::Null };

        if a.accuracy_only {
            let (confident_right, confident_n) = confident_right(&ev);
            report.push(serde_json::json!({
                "dataset": name,
                "input": [w, h],
                "score": model.header.score.kind,
                "image_auroc": ev.image_auroc,
                "average_precision": ev.average_precision,
                "f1": ev.f1,
                "best_f1": best_test_f1(&ev).map(|b| b.1),
                "confidence": &model.header.training.confidence,
                "confident_right": confident_right,
                "confident_n": confident_n,
                "precision": ev.precision,
                "recall": ev.recall,
                "test_pixel_auroc": ev.pixel_auroc,
                "fit_seconds": fit,
                "stage_seconds": &model.header.training.stage_seconds,
                "sizes": &model.header.training.oof_auroc_by_input_size,
                "peak_rss_mib": peak_rss_mib(),
                "options": &opts,
            }));
            continue;
        }
        let s = speed(&b, &model, &set, a.repeats)?;
        report.push(serde_json::json!({
            "dataset": name,
            "input": [w, h],
            "bank": model.header.patchcore.bank_size,
            "score": model.header.score.kind,
            "gaussian_weight": model.header.score.gaussian_weight,
            "oof_auroc_patchcore": model.header.training.oof_auroc_patchcore,
            "oof_auroc_gaussian": model.header.training.oof_auroc_gaussian,
            "options": &opts,
            "segmentation": model.header.segmentation,
            "image_auroc": ev.image_auroc,
            "average_precision": ev.average_precision,
            "f1": ev.f1,
            "best_f1": best_test_f1(&ev).map(|b| b.1),
            "stage_seconds": &model.header.training.stage_seconds,
            "precision": ev.precision,
            "recall": ev.recall,
            "n_normal": ev.n_normal,
            "n_anomaly": ev.n_anomaly,
            "evaluation": ev.source,
            "pixel": pixel,
            "test_pixel_auroc": ev.pixel_auroc,
            "fit_seconds": fit,
            "train_images": model.header.training.train_normal + model.header.training.train_anomaly,
            "detect_p50_ms": s.p50,
            "detect_p99_ms": s.p99,
            "preprocess_p50_ms": s.prep50,
            "detect_heat_map_p50_ms": s.heat50,
            "backbone_p50_ms": s.bare50,
            "overhead_ratio": s.p50 / s.bare50,
            "batched_images_per_s": s.throughput,
            "peak_rss_mib": s.peak,
            "threads": threads,
        }));
    }
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}

/// The data set folders to run: every folder of `a.datasets` and the synthetic ones, those whose name contains
/// `a.only` when given.
fn datasets(a: &BenchArgs) -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&a.datasets)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.datasets.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    // The synthetic hard cases (see `synth`), generated once into the temporary folder.
    let synth_root = std::env::temp_dir().join("vigil-bench-synthetic");
    if a.only.as_deref().is_none_or(|o| "synthetic-texture synthetic-labelled".contains(o)) {
        super::synth::generate(&synth_root)?;
        dirs.extend(["synthetic-texture", "synthetic-labelled"].map(|n| synth_root.join(n)));
    }
    if let Some(o) = &a.only {
        dirs.retain(|d| d.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains(o.as_str())));
    }
    Ok(dirs)
}

/// Prints the trained model's settings, its evaluation, its out-of-fold figures and its fit time.
fn print_model(model: &Model, ev: &Evaluation, train_wall: f64) {
    let fit = model.header.training.fit_seconds;
    let (w, h) = model.input_size();
    println!(
        "  input {w}×{h}, bank {}, score {}, threshold rule {:?}, segmentation {}",
        model.header.patchcore.bank_size, model.header.score.kind, model.header.threshold_rule, model.header.segmentation
    );
    println!(
        "  image AUROC {:.4}  AP {:.4}  F1 {:.4}  precision {:.4}  recall {:.4}  ({} normal / {} anomalous, {})",
        ev.image_auroc.unwrap_or(f64::NAN),
        ev.average_precision.unwrap_or(f64::NAN),
        ev.f1,
        ev.precision,
        ev.recall,
        ev.n_normal,
        ev.n_anomaly,
        ev.source
    );
    if let Some(p) = ev.pixel_auroc {
        println!("  pixel AUROC on the test images' masks: heat map {p:.4}");
    }
    let t = &model.header.training;
    println!(
        "  out-of-fold AUROC: PatchCore {:?}, supervised {:?}, chosen {:?} (blend weights tried {:?}); threshold {:.4} {:?}",
        t.oof_auroc_patchcore, t.oof_auroc_supervised, t.oof_auroc_combined, t.oof_auroc_by_weight, model.header.threshold, model.header.threshold_rule
    );
    if t.oof_auroc_gaussian.is_some() {
        println!(
            "  Gaussian: out-of-fold AUROC {:?}, fusion weight {:?} (tried {:?}), shrinkage {:?}, image heads take the scores: {}",
            t.oof_auroc_gaussian, model.header.score.gaussian_weight, t.oof_auroc_by_gaussian_weight, t.gaussian_shrinkage, model.header.score.head_stats
        );
    }
    if let Some(m) = &t.mirror_test {
        println!(
            "  mirror test ({} normals in the bank, {} probed): AUROC mirrored {:?} (limit {:.3}), turned {:?} (limit {:.3}) → bank flips {}, turns {}",
            m.bank_images, m.probed_images, m.flip_auroc, m.flip_limit, m.turn_auroc, m.turn_limit, t.bank_flips, t.bank_turns
        );
    } else if t.bank_flips || t.bank_turns {
        println!("  bank flips {}, turns {} (as set)", t.bank_flips, t.bank_turns);
    }
    println!("  fit {fit:.2}s (train() with evaluation {train_wall:.2}s)");
    println!("  input sizes tried (out-of-fold AUROC): {:?}", t.oof_auroc_by_input_size);
    let stages: Vec<String> = t.stage_seconds.iter().map(|(s, secs)| format!("{s} {secs:.1}")).collect();
    println!("  stages (s): {}", stages.join(", "));
    if let Some((best_t, best)) = best_test_f1(ev) {
        println!("  threshold on the test images: F1 {:.4} at the trained threshold {:.4}, best F1 {best:.4} at {best_t:.4} (gap {:.4})", ev.f1, ev.threshold, best - ev.f1);
    }
    let (right, n) = confident_right(ev);
    println!("  confidence ({}): verdicts with confidence ≥ 0.9: {n}, right {right:?}", t.confidence.as_deref().unwrap_or("normal_spread"));
}

/// How often the verdicts with `Confidence` ≥ 0.9 are right on the evaluation's images, and how many there are
/// (a calibrated confidence is right at least 90 % of the time there).
fn confident_right(ev: &Evaluation) -> (Option<f64>, usize) {
    let sure: Vec<bool> = ev.images.iter().filter(|i| i.confidence >= 0.9).map(|i| i.predicted_anomalous == i.anomalous).collect();
    let right = sure.iter().filter(|&&r| r).count();
    ((!sure.is_empty()).then(|| right as f64 / sure.len() as f64), sure.len())
}

/// The best F1 any threshold reaches on the evaluation's images, and that threshold (what the trained one could
/// at most have given).
fn best_test_f1(ev: &Evaluation) -> Option<(f32, f64)> {
    let scores: Vec<f32> = ev.images.iter().map(|i| i.score).collect();
    let labels: Vec<bool> = ev.images.iter().map(|i| i.anomalous).collect();
    engine::threshold::f1_optimal(&scores, &labels)
}

/// Pixel AUROC (heat map and segmentation head) and per-label IoU and F1 by 4-fold over the training images
/// (whose anomalies have masks): printed, and returned as JSON.
fn pixel_folds(b: &Backbone, set: &TrainSet, opts: &TrainOptions) -> Result<serde_json::Value> {
    let k = 4;
    let (mut pa, mut sa, mut ious) = (Vec::new(), Vec::new(), Vec::new());
    let all: Vec<Sample> = set.train.clone();
    for f in 0..k {
        let tr: Vec<Sample> = all.iter().enumerate().filter(|(i, _)| i % k != f).map(|(_, s)| s.clone()).collect();
        let te: Vec<Sample> = all.iter().enumerate().filter(|(i, _)| i % k == f).map(|(_, s)| s.clone()).collect();
        let fold = TrainSet { train: tr, test: Some(te), labels: set.labels.clone() };
        let (_, fev) = engine::train(b, &fold, opts, &mut |_| {})?;
        pa.extend(fev.pixel_auroc);
        sa.extend(fev.segmentation_pixel_auroc);
        ious.push(fev.labels.iter().map(|l| (l.name.clone(), l.iou, l.f1)).collect::<Vec<_>>());
    }
    let mean = |v: &[f64]| if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
    println!("  pixel AUROC ({k}-fold over training images): heat map {:.4}, segmentation head {:.4}", mean(&pa), mean(&sa));
    let mut per_label = serde_json::Map::new();
    for l in &set.labels {
        let v: Vec<f64> = ious.iter().flat_map(|f| f.iter().filter(|x| x.0 == l.name).map(|x| x.1)).collect();
        let f1: Vec<f64> = ious.iter().flat_map(|f| f.iter().filter(|x| x.0 == l.name).map(|x| x.2)).collect();
        println!("  label {}: IoU {:.4}, F1 {:.4}", l.name, mean(&v), mean(&f1));
        per_label.insert(l.name.clone(), serde_json::json!({"iou": mean(&v), "f1": mean(&f1)}));
    }
    Ok(serde_json::json!({"pixel_auroc": mean(&pa), "segmentation_pixel_auroc": mean(&sa), "per_label": per_label}))
}

/// Detection timings of one model (milliseconds), batched throughput and peak memory.
struct Speed {
    p50: f64,
    p99: f64,
    /// Resize and normalisation.
    prep50: f64,
    /// With the heat map.
    heat50: f64,
    /// The bare backbone forward.
    bare50: f64,
    /// Images per second.
    throughput: f64,
    /// VmHWM, MiB.
    peak: f64,
}

/// Times `repeats` single-image detections on the test images (the training images without), interleaved
/// with the bare backbone forward and detections with the heat map, then batched throughput; printed.
fn speed(b: &Backbone, model: &Model, set: &TrainSet, repeats: usize) -> Result<Speed> {
    let (w, h) = model.input_size();
    let test: Vec<Sample> = set.test.clone().unwrap_or_else(|| set.train.clone());
    let imgs: Vec<image::RgbImage> = test.iter().take(16).map(|s| s.image.load()).collect::<Result<_, _>>()?;
    b.warm_up(w, h, 5)?;
    for img in imgs.iter().take(5) {
        model.detect(b, img)?;
    }
    // LFV's DetectAnomalies (no heat map) and the console's detection (with it), interleaved.
    let mut single = Vec::new();
    let mut with_heat = Vec::new();
    let mut prep = Vec::new();
    let mut bare = Vec::new();
    let lfv = DetectOptions { heat_map: false };
    for i in 0..repeats.max(1) {
        let img = &imgs[i % imgs.len()];
        let t = Instant::now();
        let x = Backbone::preprocess_with(img, w, h, model.header.input.resize_filter)?;
        prep.push(t.elapsed().as_secs_f64() * 1e3);
        // The bare backbone forward on the same input, in alternation with the detections so that both
        // see the same machine (a separate loop measured a warmer, quieter backbone).
        let t = Instant::now();
        b.forward(&x)?;
        bare.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        model.detect_with(b, img, lfv)?;
        single.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        model.detect(b, img)?;
        with_heat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let batch: Vec<&image::RgbImage> = imgs.iter().take(8).collect();
    let t = Instant::now();
    let rounds = 3;
    for _ in 0..rounds {
        model.detect_batch(b, &batch)?;
    }
    let throughput = (rounds * batch.len()) as f64 / t.elapsed().as_secs_f64();
    let (p50, p99) = (percentile(&mut single.clone(), 0.5), percentile(&mut single, 0.99));
    let heat50 = percentile(&mut with_heat, 0.5);
    let bare50 = percentile(&mut bare, 0.5);
    let prep50 = percentile(&mut prep, 0.5);
    let peak = peak_rss_mib().unwrap_or(f64::NAN);
    println!(
        "  detect p50 {p50:.1} ms, p99 {p99:.1} ms (of which resize + normalise {prep50:.1} ms); bare backbone forward {bare50:.1} ms → ratio {:.2}; with heat map p50 {heat50:.1} ms",
        p50 / bare50
    );
    println!("  batched throughput {throughput:.1} images/s (batches of {}); peak memory (VmHWM) {peak:.0} MiB", batch.len());
    Ok(Speed { p50, p99, prep50, heat50, bare50, throughput, peak })
}
