//! Bad input gets a clear error naming the culprit, never a panic.

mod common;

use common::*;
use edgenet::engine::{Engine, EngineOptions};
use edgenet::graph::{Tensor, Weights};
use edgenet::onnx::{export, ExportOptions};
use edgenet::zoo::{self, Arch, WeightSource, ZooConfig};

fn small() -> ZooConfig {
    ZooConfig { width_mult: 0.35, resolution: 64, num_classes: 10 }
}

fn small_onnx() -> Vec<u8> {
    let m = zoo::build(Arch::MobileNetV2, &small(), WeightSource::Seeded(1)).unwrap();
    export(&m, &ExportOptions::default()).unwrap()
}

#[test]
fn truncated_random_and_empty_onnx_are_errors() {
    let good = small_onnx();
    let opts = EngineOptions::default();
    let mut cases: Vec<(String, Vec<u8>)> =
        vec![("empty".into(), vec![]), ("random".into(), random_input(4096, 3).iter().map(|v| v.to_bits() as u8).collect())];
    for frac in [2, 3, 10, 100] {
        cases.push((format!("truncated_1/{frac}"), good[..good.len() / frac].to_vec()));
    }
    cases.push(("truncated_minus_1".into(), good[..good.len() - 1].to_vec()));
    for (name, bytes) in cases {
        let e = Engine::from_bytes(&bytes, &name, &opts).expect_err(&name).to_string();
        assert!(e.contains(&name), "engine error does not name the model: {e}");
        let e = edgenet::onnx::import(&bytes, &name).expect_err(&name).to_string();
        assert!(e.contains(&name), "import error does not name the model: {e}");
    }
    let e = Engine::from_path(std::path::Path::new("/nonexistent/m.onnx"), &opts).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/m.onnx"), "{e}");
}

#[test]
fn wrong_input_length_is_an_error() {
    let engine = Engine::from_bytes(&small_onnx(), "small", &EngineOptions::default()).unwrap();
    let e = engine.run(&[0.0; 10]).unwrap_err().to_string();
    assert!(e.contains("expects [1, 3, 64, 64]") && e.contains("got 10"), "{e}");
    let e = Engine::from_bytes(&small_onnx(), "small", &EngineOptions { input_shape: Some([1, 3, 32, 32]), ..Default::default() }).unwrap_err().to_string();
    assert!(e.contains("[1, 3, 64, 64]"), "{e}");
}

#[test]
fn safetensors_errors_name_the_key() {
    let dir = scratch("bad_safetensors");
    let g = zoo::graph(Arch::MobileNetV2, &small()).unwrap();
    let good = Weights::seeded(&g, 1);
    let load = |w: &Weights, name: &str| {
        let p = dir.join(name);
        w.save_safetensors(&p).unwrap();
        zoo::build(Arch::MobileNetV2, &small(), WeightSource::Safetensors(&p))
    };
    let loaded = load(&good, "good.safetensors").unwrap();
    assert_eq!(loaded.weights, good);

    let mut w = good.clone();
    w.insert("features.4.conv.1.0.weight", Tensor::new(vec![2, 2], vec![0.0; 4]).unwrap());
    let e = load(&w, "shape.safetensors").unwrap_err().to_string();
    assert!(e.contains("features.4.conv.1.0.weight") && e.contains("[2, 2]"), "{e}");

    let mut w = good.clone();
    w.remove("classifier.1.bias");
    let e = load(&w, "missing.safetensors").unwrap_err().to_string();
    assert!(e.contains("classifier.1.bias") && e.contains("missing"), "{e}");

    let mut w = good.clone();
    w.insert("features.99.weight", Tensor::new(vec![1], vec![0.0]).unwrap());
    let e = load(&w, "extra.safetensors").unwrap_err().to_string();
    assert!(e.contains("features.99.weight") && e.contains("unexpected"), "{e}");

    let mut w = good.clone();
    w.insert("features.0.1.running_var", Tensor::new(vec![16], vec![f32::NAN; 16]).unwrap());
    let e = load(&w, "nan.safetensors").unwrap_err().to_string();
    assert!(e.contains("features.0.1.running_var") && e.contains("NaN"), "{e}");

    let p = dir.join("garbage.safetensors");
    std::fs::write(&p, b"\xff\xff\xff\xff\xff\xff\xff\x7fnot safetensors").unwrap();
    let e = zoo::build(Arch::MobileNetV2, &small(), WeightSource::Safetensors(&p)).unwrap_err().to_string();
    assert!(e.contains("garbage.safetensors"), "{e}");
    let p = dir.join("absent.safetensors");
    let e = zoo::build(Arch::MobileNetV2, &small(), WeightSource::Safetensors(&p)).unwrap_err().to_string();
    assert!(e.contains("absent.safetensors"), "{e}");
}

#[test]
fn impossible_configs_are_errors() {
    let c = |width_mult, resolution, num_classes| ZooConfig { width_mult, resolution, num_classes };
    let cases = [
        (Arch::MobileNetV2, c(0.0, 224, 1000), "width-mult"),
        (Arch::MobileNetV2, c(-1.0, 224, 1000), "width-mult"),
        (Arch::MobileNetV2, c(f32::NAN, 224, 1000), "width-mult"),
        (Arch::MobileNetV2, c(100.0, 224, 1000), "width-mult"),
        (Arch::ResNet50, c(0.5, 224, 1000), "width-mult"),
        (Arch::MobileNetV2, c(1.0, 16, 1000), "resolution"),
        (Arch::ResNet50, c(1.0, 0, 1000), "resolution"),
        (Arch::EfficientNetLite0, c(1.0, 100_000, 1000), "resolution"),
        (Arch::ResNet18, c(1.0, 224, 0), "num-classes"),
    ];
    for (arch, cfg, word) in cases {
        let e = zoo::build(arch, &cfg, WeightSource::Seeded(0)).unwrap_err().to_string();
        assert!(e.contains(word), "{arch} {cfg:?}: {e}");
    }
    assert!("resnet51".parse::<Arch>().unwrap_err().to_string().contains("resnet51"));
    assert_eq!("ResNet-50".parse::<Arch>().unwrap(), Arch::ResNet50);
}

#[test]
fn unsupported_onnx_op_is_named() {
    use prost::Message;
    let mut proto = edgenet::onnx::decode(&small_onnx(), "m").unwrap();
    let g = proto.graph.as_mut().unwrap();
    let n = g.node.iter_mut().find(|n| n.op_type == "Relu" || n.op_type == "Clip").unwrap();
    n.op_type = "Tanh".into();
    n.input.truncate(1);
    let bytes = proto.encode_to_vec();
    let e = edgenet::onnx::import(&bytes, "tanh.onnx").unwrap_err().to_string();
    // The op, the file, and the list of what is supported.
    assert!(e.contains("Tanh") && e.contains("tanh.onnx") && e.contains("HardSwish, Add, Mul"), "{e}");
}

/// One structural defect of a model file.
type Defect = (&'static str, fn(&mut tract_onnx::pb::ModelProto), &'static [&'static str]);

fn first_conv(p: &mut tract_onnx::pb::ModelProto) -> &mut tract_onnx::pb::NodeProto {
    p.graph.as_mut().unwrap().node.iter_mut().find(|n| n.op_type == "Conv" || n.op_type == "QLinearConv").unwrap()
}

fn set_ints(n: &mut tract_onnx::pb::NodeProto, name: &str, v: &[i64]) {
    use tract_onnx::pb::attribute_proto::AttributeType;
    n.attribute.retain(|a| a.name != name);
    n.attribute.push(tract_onnx::pb::AttributeProto { name: name.into(), r#type: AttributeType::Ints as i32, ints: v.to_vec(), ..Default::default() });
}

fn set_input_dims(p: &mut tract_onnx::pb::ModelProto, dims: &[i64]) {
    use tract_onnx::pb::tensor_shape_proto::{dimension::Value, Dimension};
    let input = &mut p.graph.as_mut().unwrap().input[0];
    let Some(tract_onnx::pb::type_proto::Value::TensorType(t)) = input.r#type.as_mut().and_then(|t| t.value.as_mut()) else { panic!() };
    t.shape.as_mut().unwrap().dim = dims.iter().map(|&d| Dimension { denotation: String::new(), value: Some(Value::DimValue(d)) }).collect();
}

/// The defects that crashed edgenet (tract panicked or the process aborted) before models were
/// validated, and the other structural defects validation refuses: each is an error naming the
/// file and the culprit, from the engine and from the importer (`inspect`, `quantize`).
const DEFECTS: &[Defect] = &[
    ("no_nodes", |p| p.graph.as_mut().unwrap().node.clear(), &["no nodes"]),
    ("zero_strides", |p| set_ints(first_conv(p), "strides", &[0, 0]), &["strides", "at least 1"]),
    ("zero_dilations", |p| set_ints(first_conv(p), "dilations", &[0, 1]), &["dilations", "at least 1"]),
    ("negative_kernel", |p| set_ints(first_conv(p), "kernel_shape", &[-3, 3]), &["kernel_shape"]),
    ("huge_pads", |p| set_ints(first_conv(p), "pads", &[1 << 30, 1, 1, 1]), &["pads", "1073741824"]),
    ("negative_pads", |p| set_ints(first_conv(p), "pads", &[-1, 0, 0, 0]), &["pads"]),
    ("huge_input", |p| set_input_dims(p, &[1, 3, 1 << 30, 64]), &["input", "memory limit"]),
    ("zero_input_dim", |p| set_input_dims(p, &[1, 3, 0, 64]), &["input", "dimension #2 is 0"]),
    (
        "zero_group",
        |p| {
            use tract_onnx::pb::attribute_proto::AttributeType;
            let n = first_conv(p);
            n.attribute.retain(|a| a.name != "group");
            n.attribute.push(tract_onnx::pb::AttributeProto { name: "group".into(), r#type: AttributeType::Int as i32, i: 0, ..Default::default() });
        },
        &["group"],
    ),
    (
        "group_not_dividing",
        |p| {
            use tract_onnx::pb::attribute_proto::AttributeType;
            let n = first_conv(p);
            n.attribute.retain(|a| a.name != "group");
            n.attribute.push(tract_onnx::pb::AttributeProto { name: "group".into(), r#type: AttributeType::Int as i32, i: 7, ..Default::default() });
        },
        &["group", "does not divide"],
    ),
    ("undefined_input", |p| first_conv(p).input[0] = "nowhere".into(), &["nowhere", "defines"]),
    (
        "cycle",
        |p| {
            let g = p.graph.as_mut().unwrap();
            let last = g.node.last().unwrap().output[0].clone();
            g.node[0].input[0] = last;
        },
        &["topological order"],
    ),
    ("output_not_produced", |p| p.graph.as_mut().unwrap().output[0].name = "ghost".into(), &["ghost", "produced by no node"]),
    (
        "produced_twice",
        |p| {
            let g = p.graph.as_mut().unwrap();
            let first = g.node[0].output[0].clone();
            g.node[1].output[0] = first;
        },
        &["already defined"],
    ),
    (
        "short_data",
        |p| {
            let g = p.graph.as_mut().unwrap();
            let t = g.initializer.iter_mut().max_by_key(|t| t.raw_data.len() + 4 * t.float_data.len()).unwrap();
            if t.raw_data.is_empty() {
                t.float_data.pop();
            } else {
                t.raw_data.truncate(t.raw_data.len() - 4);
            }
        },
        &["holds", "values"],
    ),
    ("negative_dim", |p| p.graph.as_mut().unwrap().initializer[0].dims[0] = -2, &["negative"]),
    ("unknown_type", |p| p.graph.as_mut().unwrap().initializer[0].data_type = 99, &["unknown element type"]),
    (
        "external_data",
        |p| {
            let t = &mut p.graph.as_mut().unwrap().initializer[0];
            t.external_data.push(tract_onnx::pb::StringStringEntryProto { key: "location".into(), value: "../../etc/passwd".into() });
        },
        &["external"],
    ),
];

#[test]
fn defective_models_are_errors_naming_the_culprit() {
    use prost::Message;
    let good = edgenet::onnx::decode(&small_onnx(), "m").unwrap();
    for (name, break_it, words) in DEFECTS {
        let mut p = good.clone();
        break_it(&mut p);
        let bytes = p.encode_to_vec();
        let origin = format!("{name}.onnx");
        let e = Engine::from_bytes(&bytes, &origin, &EngineOptions::default()).expect_err(name).to_string();
        assert!(e.contains(&origin), "{name}: the error does not name the file: {e}");
        for w in *words {
            assert!(e.contains(w), "{name}: `{w}` missing from: {e}");
        }
        let e = edgenet::onnx::import(&bytes, &origin).expect_err(name).to_string();
        assert!(e.contains(&origin) && words.iter().all(|w| e.contains(w)), "{name} (import): {e}");
    }
}

#[test]
fn bad_quantization_scales_are_named() {
    use prost::Message;
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/int8/mobilenet_v2_035_48.int8.onnx")).unwrap();
    let good = edgenet::onnx::decode(&bytes, "q").unwrap();
    for bad in [0.0f32, -1.0, f32::NAN, f32::INFINITY] {
        let mut p = good.clone();
        let g = p.graph.as_mut().unwrap();
        let q = g.node.iter().find(|n| n.op_type == "QuantizeLinear").unwrap().input[1].clone();
        let t = g.initializer.iter_mut().find(|t| t.name == q).unwrap();
        t.raw_data = bad.to_le_bytes().to_vec();
        t.float_data.clear();
        let e = Engine::from_bytes(&p.encode_to_vec(), "scale.onnx", &EngineOptions::default()).unwrap_err().to_string();
        assert!(e.contains("scale.onnx") && e.contains(&q) && e.contains("finite and positive"), "{bad}: {e}");
    }
}

#[test]
fn models_over_the_memory_limit_are_refused_before_allocating() {
    use prost::Message;
    let bytes = small_onnx();
    // The weights: the small model's f32 weights take over 1 MiB.
    let e = Engine::from_bytes(&bytes, "w.onnx", &EngineOptions { memory_limit: 1 << 20, ..Default::default() }).unwrap_err().to_string();
    assert!(e.contains("w.onnx") && e.contains("the weights would need") && e.contains("memory limit of 1.0 MiB"), "{e}");
    // An activation: pads of 60 000 on the first convolution, dilated by 30 000 so that the
    // window is as wide as the pads (both within the bounds validation sets), make an output of
    // about 16 × 60 000² f32, over 200 GiB: refused, naming the node.
    let mut p = edgenet::onnx::decode(&bytes, "m").unwrap();
    set_ints(first_conv(&mut p), "pads", &[60_000, 60_000, 60_000, 60_000]);
    set_ints(first_conv(&mut p), "dilations", &[30_000, 30_000]);
    let e = Engine::from_bytes(&p.encode_to_vec(), "act.onnx", &EngineOptions::default()).unwrap_err().to_string();
    assert!(e.contains("act.onnx") && e.contains("its output") && e.contains("memory limit"), "{e}");
    // Raising the limit admits the model.
    Engine::from_bytes(&bytes, "w.onnx", &EngineOptions { memory_limit: 64 << 20, ..Default::default() }).unwrap();
}

/// Found by fuzzing (`tests/fuzz.rs`, structural ONNX mutations): a convolution whose dilated
/// kernel is larger than its padded input has an empty output, on which tract's optimizer
/// never terminates. It is refused before optimization, naming the node.
#[test]
fn a_kernel_larger_than_its_padded_input_is_refused_not_a_hang() {
    use prost::Message;
    let mut p = edgenet::onnx::decode(&small_onnx(), "m").unwrap();
    // The last depthwise convolution works on a 2×2 plane (64² input, /32): a 3×3 kernel
    // dilated by 8 spans 17 pixels.
    let g = p.graph.as_mut().unwrap();
    let n = g.node.iter_mut().filter(|n| n.op_type == "Conv" && n.attribute.iter().any(|a| a.name == "group" && a.i > 1)).last().unwrap();
    let name = n.name.clone();
    set_ints(n, "dilations", &[8, 8]);
    let e = Engine::from_bytes(&p.encode_to_vec(), "dilated.onnx", &EngineOptions::default()).unwrap_err().to_string();
    assert!(e.contains("dilated.onnx") && e.contains(&name) && e.contains("is empty"), "{e}");
}

/// Found by fuzzing: a depthwise QLinearConv with strides [2, 2³⁰] made edgenet's int8 kernel
/// size its column-phase buffer by the stride (52 GB, and the process aborted). A stride past
/// the input gives one output column whatever its value; the kernels now clamp it, and the
/// model runs.
#[test]
fn a_stride_past_the_input_runs_without_sizing_buffers_by_it() {
    use prost::Message;
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/int8/mobilenet_v2_035_48.int8.onnx")).unwrap();
    let mut p = edgenet::onnx::decode(&bytes, "q").unwrap();
    let g = p.graph.as_mut().unwrap();
    let n = g.node.iter_mut().find(|n| n.op_type == "QLinearConv" && n.attribute.iter().any(|a| a.name == "group" && a.i > 1)).unwrap();
    set_ints(n, "strides", &[2, 1 << 30]);
    let engine = Engine::from_bytes(&p.encode_to_vec(), "stride.onnx", &EngineOptions::default()).unwrap();
    let y = engine.run(&vec![0.25; engine.input_len()]).unwrap();
    assert!(y.iter().all(|v| v.is_finite()), "{y:?}");
}

/// Found by fuzzing: a depthwise conv of the int8 fixture padded by 2¹⁶ on top made its output
/// 65,583 rows high, and tract's shape inference never finished on the residual Add that
/// followed. A pad wider than the window it pads is now refused before tract sees the file.
#[test]
fn a_pad_wider_than_its_window_is_refused_before_tract_runs_away() {
    use prost::Message;
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/int8/mobilenet_v2_035_48.int8.onnx")).unwrap();
    let mut proto = edgenet::onnx::decode(&bytes, "m").unwrap();
    let g = proto.graph.as_mut().unwrap();
    let n = g.node.iter_mut().find(|n| n.name == "features.3.conv.1.0").unwrap();
    let pads = n.attribute.iter_mut().find(|a| a.name == "pads").unwrap();
    pads.ints = vec![65536, 1, 1, 1];
    let bytes = proto.encode_to_vec();
    let e = Engine::from_bytes(&bytes, "pad.onnx", &EngineOptions::default()).unwrap_err().to_string();
    assert!(e.contains("features.3.conv.1.0") && e.contains("pads") && e.contains("65536"), "{e}");
    let e = edgenet::onnx::import(&bytes, "pad.onnx").unwrap_err().to_string();
    assert!(e.contains("pads"), "{e}");
}
