//! Build script: embeds a model in the binary when `EDGENET_EMBED_MODEL` names an ONNX file at
//! build time, so that an appliance is one file (`edgenet run --source -` then needs no model
//! argument). Without the variable nothing is embedded and nothing changes.

use std::path::PathBuf;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(edgenet_embedded_model)");
    println!("cargo::rerun-if-env-changed=EDGENET_EMBED_MODEL");
    let Some(path) = std::env::var_os("EDGENET_EMBED_MODEL").filter(|p| !p.is_empty()) else {
        return;
    };
    let path = PathBuf::from(path);
    let path = match std::fs::canonicalize(&path) {
        Ok(p) => p,
        Err(e) => {
            // A clear build error naming the variable and the file, not a confusing
            // `include_bytes!` failure later.
            println!("cargo::error=EDGENET_EMBED_MODEL={}: {e}", path.display());
            return;
        }
    };
    let meta = match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => m,
        Ok(_) => {
            println!("cargo::error=EDGENET_EMBED_MODEL={}: not a file", path.display());
            return;
        }
        Err(e) => {
            println!("cargo::error=EDGENET_EMBED_MODEL={}: {e}", path.display());
            return;
        }
    };
    let Some(utf8) = path.to_str() else {
        println!("cargo::error=EDGENET_EMBED_MODEL={}: the path must be UTF-8", path.display());
        return;
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("model.onnx");
    println!("cargo::rerun-if-changed={utf8}");
    println!("cargo::rustc-cfg=edgenet_embedded_model");
    println!("cargo::rustc-env=EDGENET_EMBEDDED_MODEL_PATH={utf8}");
    println!("cargo::rustc-env=EDGENET_EMBEDDED_MODEL_NAME={name}");
    println!("cargo::warning=embedding {utf8} ({} bytes) as the default model", meta.len());
}
