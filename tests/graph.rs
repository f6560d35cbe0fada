//! Structure of the zoo graphs: the bottleneck wiring, golden text dumps, the inverted
//! residual shortcut rule, and the naming table.

mod common;

use std::path::Path;

use edgenet::graph::{GraphBuilder, Op};
use edgenet::onnx::{export, ExportOptions};
use edgenet::zoo::blocks::{bottleneck, inverted_residual, InvertedResidual, IrNaming};
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
            expand_ratio: 6,
            out_channels: c_out,
            kernel: 3,
            stride,
            bn_eps: 1e-5,
            padding: edgenet::graph::Padding::Symmetric(1),
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
    assert_eq!(IrNaming::Torchvision.names(true).0, Some(("conv.0.0", "conv.0.1", "conv.0.2")));
    assert_eq!(IrNaming::Torchvision.names(true).2, ("conv.2", "conv.3", ""));
    assert_eq!(IrNaming::Torchvision.names(false).0, None);
    assert_eq!(IrNaming::Torchvision.names(false).1, ("conv.0.0", "conv.0.1", "conv.0.2"));
    assert_eq!(IrNaming::Torchvision.names(false).2, ("conv.1", "conv.2", ""));
    assert_eq!(IrNaming::EfficientNet.names(true).0.map(|n| (n.0, n.1)), Some(("_expand_conv", "_bn0")));
    assert_eq!(IrNaming::EfficientNet.names(false).1 .0, "_depthwise_conv");
    assert_eq!(IrNaming::EfficientNet.names(false).2, ("_project_conv", "_bn2", ""));
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
