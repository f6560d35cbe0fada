//! Structure of the zoo graphs: the bottleneck wiring, golden text dumps, the inverted
//! residual shortcut rule, and the naming table.

mod common;

use std::path::Path;

use edgenet::graph::{GraphBuilder, Op};
use edgenet::onnx::{export, ExportOptions};
use edgenet::zoo::blocks::{bottleneck, inverted_residual, Act, InvertedResidual, IrNaming};
use edgenet::zoo::{self, Arch, WeightSource, ZooConfig};

/// A widely copied blog version of the bottleneck feeds the block input `x` to all three
/// convs. Ours chains them: conv2 reads relu1, conv3 reads relu2, and the add reads bn3 and
/// the shortcut. Checked in the IR and in the exported ONNX.
#[test]
fn bottleneck_convs_consume_the_previous_conv_not_the_block_input() {
    let mut b = GraphBuilder::new();
    let x = b.input(256, 14, 14).unwrap();
    b.push_scope("blk");
    let y = bottleneck(&mut b, x, 64, 2).unwrap();
    b.pop_scope();
    let g = b.finish(y).unwrap();
    let by_name = |n: &str| g.nodes().iter().find(|node| node.name == n).unwrap_or_else(|| panic!("no node {n}"));
    let input_of = |n: &str| g.node(by_name(n).inputs[0]).name.clone();
    assert_eq!(input_of("blk.conv1"), "input");
    assert_eq!(input_of("blk.conv2"), "blk.relu1");
    assert_eq!(input_of("blk.conv3"), "blk.relu2");
    assert_eq!(input_of("blk.downsample.0"), "input");
    let add = by_name("blk.add");
    let add_inputs: Vec<&str> = add.inputs.iter().map(|t| g.node(*t).name.as_str()).collect();
    assert_eq!(add_inputs, ["blk.bn3", "blk.downsample.1"]);
    // The stride sits on the 3×3 conv (v1.5), channels squeeze to a quarter and come back.
    let Op::Conv2d(c1) = &by_name("blk.conv1").op else { panic!() };
    let Op::Conv2d(c2) = &by_name("blk.conv2").op else { panic!() };
    let Op::Conv2d(c3) = &by_name("blk.conv3").op else { panic!() };
    assert_eq!((c1.kernel, c1.stride, c1.in_channels, c1.out_channels), ([1, 1], [1, 1], 256, 64));
    assert_eq!((c2.kernel, c2.stride, c2.in_channels, c2.out_channels), ([3, 3], [2, 2], 64, 64));
    assert_eq!((c3.kernel, c3.stride, c3.in_channels, c3.out_channels), ([1, 1], [1, 1], 64, 256));
    assert_eq!(g.output_shape(), &[1, 256, 7, 7]);

    let model = zoo::build(Arch::ResNet50, &ZooConfig { resolution: 64, ..Default::default() }, WeightSource::Seeded(0)).unwrap();
    let proto = edgenet::onnx::decode(&export(&model, &ExportOptions::default()).unwrap(), "r50").unwrap();
    let nodes = &proto.graph.as_ref().unwrap().node;
    let onnx_input = |n: &str| nodes.iter().find(|node| node.name == n).unwrap().input[0].clone();
    assert_eq!(onnx_input("layer3.2.conv2"), "layer3.2.relu1");
    assert_eq!(onnx_input("layer3.2.conv3"), "layer3.2.relu2");
    assert_eq!(onnx_input("layer3.2.conv1"), "layer3.1.relu");
}

#[test]
fn inverted_residual_shortcut_only_when_shapes_match() {
    let cases = [(1, 16, 16, true), (2, 16, 16, false), (1, 16, 24, false)];
    for (stride, c_in, c_out, has_add) in cases {
        let mut b = GraphBuilder::new();
        let x = b.input(c_in, 16, 16).unwrap();
        let cfg = InvertedResidual {
            expanded_channels: 6 * c_in,
            out_channels: c_out,
            kernel: 3,
            stride,
            bn_eps: 1e-5,
            padding: edgenet::graph::Padding::Symmetric(1),
            act: Act::Relu6,
            se: None,
            naming: IrNaming::Torchvision,
        };
        let y = inverted_residual(&mut b, x, &cfg).unwrap();
        let g = b.finish(y).unwrap();
        assert_eq!(g.nodes().iter().any(|n| n.op == Op::Add), has_add, "stride {stride} {c_in}→{c_out}");
        // expand 1×1 → ReLU6 → depthwise → ReLU6 → linear 1×1 projection (no activation after).
        let kinds: Vec<&str> = g.nodes().iter().map(|n| n.op.kind()).collect();
        assert_eq!(kinds[1..9], ["Conv2d", "BatchNorm", "Relu6", "Conv2d", "BatchNorm", "Relu6", "Conv2d", "BatchNorm"]);
        let dw = g.nodes().iter().find(|n| n.name == "conv.1.0").unwrap();
        let Op::Conv2d(c) = &dw.op else { panic!() };
        assert!(c.is_depthwise() && c.in_channels == c_in * 6);
        assert_eq!(g.nodes().last().unwrap().op.kind(), if has_add { "Add" } else { "BatchNorm" });
    }
}

#[test]
fn naming_table_maps_blocks_to_weight_keys() {
    let names = |n: IrNaming, expand: bool, se: bool| n.names(expand, se).unwrap();
    assert_eq!(names(IrNaming::Torchvision, true, false).expand, Some(("conv.0.0", "conv.0.1", "conv.0.2")));
    assert_eq!(names(IrNaming::Torchvision, true, false).project, ("conv.2", "conv.3", ""));
    assert_eq!(names(IrNaming::Torchvision, false, false).expand, None);
    assert_eq!(names(IrNaming::Torchvision, false, false).depthwise, ("conv.0.0", "conv.0.1", "conv.0.2"));
    assert_eq!(names(IrNaming::Torchvision, false, false).project, ("conv.1", "conv.2", ""));
    assert_eq!(names(IrNaming::EfficientNet, true, false).expand.map(|n| (n.0, n.1)), Some(("_expand_conv", "_bn0")));
    assert_eq!(names(IrNaming::EfficientNet, false, false).depthwise.0, "_depthwise_conv");
    assert_eq!(names(IrNaming::EfficientNet, false, false).project, ("_project_conv", "_bn2", ""));
    // MobileNetV3: the entries of `block`, numbered in order, the squeeze-excitation one of them.
    let v3 = names(IrNaming::TorchvisionV3, true, true);
    assert_eq!(v3.expand, Some(("block.0.0", "block.0.1", "block.0.2")));
    assert_eq!(v3.depthwise, ("block.1.0", "block.1.1", "block.1.2"));
    assert_eq!(v3.se, Some("block.2"));
    assert_eq!(v3.project, ("block.3.0", "block.3.1", ""));
    let v3 = names(IrNaming::TorchvisionV3, false, true);
    assert_eq!((v3.expand, v3.depthwise.0, v3.se, v3.project.0), (None, "block.0.0", Some("block.1"), "block.2.0"));
    let v3 = names(IrNaming::TorchvisionV3, true, false);
    assert_eq!((v3.depthwise.0, v3.se, v3.project.0), ("block.1.0", None, "block.2.0"));
    let v3 = names(IrNaming::TorchvisionV3, false, false);
    assert_eq!((v3.depthwise.0, v3.se, v3.project.1), ("block.0.0", None, "block.1.1"));
    // Naming schemes without a squeeze-excitation refuse one instead of inventing names.
    for n in [IrNaming::Torchvision, IrNaming::EfficientNet] {
        let e = n.names(true, true).unwrap_err().to_string();
        assert!(e.contains("squeeze-excitation"), "{e}");
    }
    // And the zoo produces exactly the keys of the real weight files.
    let g = zoo::graph(Arch::MobileNetV2, &ZooConfig::default()).unwrap();
    let keys: Vec<String> = g.param_specs().into_iter().map(|p| p.key).collect();
    for k in [
        "features.0.0.weight",
        "features.1.conv.0.0.weight",
        "features.1.conv.1.weight",
        "features.1.conv.2.running_var",
        "features.4.conv.1.0.weight",
        "features.17.conv.3.bias",
        "features.18.1.weight",
        "classifier.1.weight",
    ] {
        assert!(keys.iter().any(|x| x == k), "missing {k}");
    }
    let g = zoo::graph(Arch::ResNet50, &ZooConfig::default()).unwrap();
    let keys: Vec<String> = g.param_specs().into_iter().map(|p| p.key).collect();
    for k in ["conv1.weight", "bn1.running_mean", "layer3.2.conv2.weight", "layer2.0.downsample.0.weight", "layer4.2.bn3.bias", "fc.bias"] {
        assert!(keys.iter().any(|x| x == k), "missing {k}");
    }
}

fn golden(arch: Arch) {
    let g = zoo::graph(arch, &ZooConfig::default()).unwrap();
    let dump = g.dump();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/golden/{arch}.txt"));
    if std::env::var_os("EDGENET_BLESS").is_some() {
        std::fs::write(&path, &dump).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (run with EDGENET_BLESS=1 to create)", path.display()));
    if dump != want {
        let line = dump.lines().zip(want.lines()).position(|(a, b)| a != b).unwrap_or(0);
        panic!(
            "{arch} dump differs from {} at line {}:\n got: {}\nwant: {}",
            path.display(),
            line + 1,
            dump.lines().nth(line).unwrap_or(""),
            want.lines().nth(line).unwrap_or("")
        );
    }
}

#[test]
fn golden_dump_resnet50() {
    golden(Arch::ResNet50);
}

#[test]
fn golden_dump_mobilenet_v2() {
    golden(Arch::MobileNetV2);
}

#[test]
fn golden_dump_efficientnet_lite0() {
    golden(Arch::EfficientNetLite0);
}

#[test]
fn golden_dump_mobilenet_v3_small() {
    golden(Arch::MobileNetV3Small);
}

#[test]
fn golden_dump_mobilenet_v3_large() {
    golden(Arch::MobileNetV3Large);
}

/// The names and shapes torchvision's `mobilenet_v3_small()` / `mobilenet_v3_large()` state
/// dicts hold (tests/data/golden/*.torchvision_keys.txt, written by
/// make_mobilenet_v3_fixtures.py from torchvision 0.29.2) are exactly the parameters our graphs
/// ask for, `num_batches_tracked` aside; and the parameter count torchvision gives.
#[test]
fn mobilenet_v3_parameters_are_torchvisions_state_dict() {
    for arch in [Arch::MobileNetV3Small, Arch::MobileNetV3Large] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/golden/{arch}.torchvision_keys.txt"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut want = Vec::new();
        let mut params = None;
        for line in text.lines() {
            let (key, rest) = line.split_once(' ').unwrap();
            if key == "params" {
                params = Some(rest.parse::<u64>().unwrap());
            } else if !key.ends_with(".num_batches_tracked") {
                let shape: Vec<usize> = rest.trim_matches(['[', ']']).split(", ").map(|d| d.parse().unwrap()).collect();
                want.push((key.to_string(), shape));
            }
        }
        let g = zoo::graph(arch, &ZooConfig::default()).unwrap();
        let got: Vec<(String, Vec<usize>)> = g.param_specs().into_iter().map(|p| (p.key, p.shape)).collect();
        // Same order too: torchvision registers modules in forward order, as the builder adds nodes.
        assert_eq!(got.len(), want.len(), "{arch}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "{arch}");
        }
        assert_eq!(Some(g.param_count()), params, "{arch}");
    }
}

/// MobileNetV3's block: expand → act → depthwise → act → squeeze-excitation (pool, fc1, ReLU,
/// fc2, hard sigmoid, scale) → projection; hard swish where the table says "HS"; the expand
/// conv only when the expanded width differs from the input's.
#[test]
fn mobilenet_v3_block_structure() {
    let g = zoo::graph(Arch::MobileNetV3Large, &ZooConfig::default()).unwrap();
    let node = |n: &str| g.nodes().iter().find(|node| node.name == n).unwrap_or_else(|| panic!("no node {n}"));
    let block: Vec<(&str, &str)> = g.nodes().iter().filter(|n| n.name.starts_with("features.13.")).map(|n| (n.name.as_str(), n.op.kind())).collect();
    assert_eq!(
        block,
        [
            ("features.13.block.0.0", "Conv2d"),
            ("features.13.block.0.1", "BatchNorm"),
            ("features.13.block.0.2", "HardSwish"),
            ("features.13.block.1.0", "Conv2d"),
            ("features.13.block.1.1", "BatchNorm"),
            ("features.13.block.1.2", "HardSwish"),
            ("features.13.block.2.avgpool", "GlobalAvgPool"),
            ("features.13.block.2.fc1", "Conv2d"),
            ("features.13.block.2.activation", "Relu"),
            ("features.13.block.2.fc2", "Conv2d"),
            ("features.13.block.2.scale_activation", "HardSigmoid"),
            ("features.13.block.2.mul", "Mul"),
            ("features.13.block.3.0", "Conv2d"),
            ("features.13.block.3.1", "BatchNorm"),
        ]
    );
    let Op::Conv2d(dw) = &node("features.13.block.1.0").op else { panic!() };
    assert_eq!((dw.kernel, dw.stride, dw.pads, dw.groups), ([5, 5], [2, 2], [2; 4], 672));
    let Op::Conv2d(fc1) = &node("features.13.block.2.fc1").op else { panic!() };
    assert_eq!((fc1.in_channels, fc1.out_channels, fc1.bias), (672, 168, true));
    assert_eq!(node("features.13.block.2.scale_activation").op, Op::HardSigmoid { alpha: 1.0 / 6.0, beta: 0.5 });
    let mul = node("features.13.block.2.mul");
    let mul_inputs: Vec<&str> = mul.inputs.iter().map(|t| g.node(*t).name.as_str()).collect();
    assert_eq!(mul_inputs, ["features.13.block.1.2", "features.13.block.2.scale_activation"]);
    assert_eq!(mul.shape, vec![1, 672, 7, 7]);
    // Stride 2: no residual. Block 14 (stride 1, 160 → 160) has one; block 1 (16 → 16, no
    // expansion, ReLU) starts with the depthwise conv.
    assert!(!g.nodes().iter().any(|n| n.name == "features.13.add"));
    let add = node("features.14.add");
    let add_inputs: Vec<&str> = add.inputs.iter().map(|t| g.node(*t).name.as_str()).collect();
    assert_eq!(add_inputs, ["features.14.block.3.1", "features.13.block.3.1"]);
    assert_eq!(node("features.1.block.0.2").op, Op::Relu);
    let Op::Conv2d(c) = &node("features.1.block.0.0").op else { panic!() };
    assert!(c.is_depthwise() && c.in_channels == 16);
    assert_eq!(node("features.1.block.1.1").op.kind(), "BatchNorm");
    // Stem and head: hard swish; BN eps 1e-3 throughout.
    assert_eq!(node("features.0.2").op, Op::HardSwish);
    assert_eq!(node("features.16.0").shape, vec![1, 960, 7, 7]);
    assert_eq!(node("classifier.1").op, Op::HardSwish);
    assert!(g.nodes().iter().all(|n| !matches!(n.op, Op::BatchNorm { eps, .. } if eps != 1e-3)));
    // MobileNetV3-Small's first block: no expansion, squeeze-excitation, stride 2.
    let g = zoo::graph(Arch::MobileNetV3Small, &ZooConfig::default()).unwrap();
    let kinds: Vec<&str> = g.nodes().iter().filter(|n| n.name.starts_with("features.1.")).map(|n| n.op.kind()).collect();
    assert_eq!(kinds, ["Conv2d", "BatchNorm", "Relu", "GlobalAvgPool", "Conv2d", "Relu", "Conv2d", "HardSigmoid", "Mul", "Conv2d", "BatchNorm"]);
}

/// Width multipliers follow torchvision: every table entry through `make_divisible(c · w, 8)`,
/// the expand conv dropped where the rounded widths coincide, the classifier's hidden width
/// scaled too (unlike MobileNetV2's head, which never shrinks).
#[test]
fn mobilenet_v3_width_multiplier() {
    let g = zoo::graph(Arch::MobileNetV3Small, &ZooConfig { width_mult: 0.5, resolution: 96, num_classes: 10 }).unwrap();
    let node = |n: &str| g.nodes().iter().find(|node| node.name == n).unwrap_or_else(|| panic!("no node {n}"));
    assert_eq!(node("features.0.0").shape, vec![1, 8, 48, 48]);
    assert_eq!(node("features.12.0").shape, vec![1, 288, 3, 3]);
    assert_eq!(node("classifier.0").shape, vec![1, 512]);
    assert_eq!(g.output_shape(), &[1, 10]);
    // Block 1: 16·0.5 → 8 in, 16·0.5 → 8 expanded: no expansion; SE of make_divisible(8/4, 8) = 8.
    assert_eq!(node("features.1.block.1.fc1").shape, vec![1, 8, 1, 1]);
    // Parameter counts of torchvision's constructors, `mobilenet_v3_*(width_mult=w,
    // num_classes=10)` (torchvision 0.29.2), across the supported range.
    // MobileNetV2 likewise (`mobilenet_v2(width_mult=w, num_classes=10)`, its head never
    // narrower than 1280).
    for (width_mult, n) in [(0.1, 98_890), (0.35, 408_938), (0.5, 700_490), (0.75, 1_368_234), (1.3, 3_738_442), (1.4, 4_333_706)] {
        let g = zoo::graph(Arch::MobileNetV2, &ZooConfig { width_mult, resolution: 64, num_classes: 10 }).unwrap();
        assert_eq!(g.param_count(), n, "mobilenet_v2 width {width_mult}");
    }
    let counts = [
        (Arch::MobileNetV3Small, [32_722, 201_354, 409_394, 892_610, 2_376_722, 23_336_514]),
        (Arch::MobileNetV3Large, [57_234, 552_554, 1_099_986, 2_426_186, 6_579_754, 65_780_898]),
    ];
    for (arch, want) in counts {
        for (width_mult, n) in [0.1, 0.35, 0.5, 0.75, 1.25, 4.0].into_iter().zip(want) {
            let g = zoo::graph(arch, &ZooConfig { width_mult, resolution: 64, num_classes: 10 }).unwrap();
            assert_eq!(g.param_count(), n, "{arch} width {width_mult}");
            assert_eq!(g.output_shape(), &[1, 10], "{arch} {width_mult}");
        }
    }
    let g = zoo::graph(Arch::MobileNetV3Large, &ZooConfig { width_mult: 0.1, resolution: 64, num_classes: 10 }).unwrap();
    // 16·0.1 → 8 in, 64·0.1 → 8 expanded: block 2 loses its expand conv at this width.
    assert!(g.nodes().iter().any(|n| n.name == "features.2.block.0.0") && !g.nodes().iter().any(|n| n.name == "features.2.block.2.0"));
}
