//! Every `shaders/*.wgsl` file parses and validates with `naga`, and every
//! kernel variant the engine uses validates with its `override` constants
//! applied and compiles to SPIR-V: shader errors fail plain `cargo test`,
//! without a GPU.

use std::path::{Path, PathBuf};

use codellama_webgpu::gpu::{KernelKey, ModuleKey, ShaderFamily, ShaderFeatures};
use naga::valid::{Capabilities, ModuleInfo, ValidationFlags, Validator};

fn shaders_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shaders")
}

/// What a module of the flavor `features` may use: subgroups only where the
/// flavor says so, so that every plain module validates without them (every
/// kernel runs on adapters that have neither subgroups nor `shader-f16`).
fn capabilities(features: ShaderFeatures) -> Capabilities {
    // pack2x16float and unpack2x16float are core WGSL (naga files them
    // under this capability, which every wgpu device has).
    let mut c = Capabilities::default() | Capabilities::SHADER_FLOAT16_IN_FLOAT32;
    if features.subgroups {
        c |= Capabilities::SUBGROUP;
    }
    if features.f16 {
        c |= Capabilities::SHADER_FLOAT16;
    }
    c
}

fn parse_and_validate(name: &str, source: &str) -> (naga::Module, ModuleInfo) {
    parse_and_validate_with(name, source, ShaderFeatures::default())
}

fn parse_and_validate_with(
    name: &str,
    source: &str,
    features: ShaderFeatures,
) -> (naga::Module, ModuleInfo) {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string_with_path(source, name)));
    let info = Validator::new(ValidationFlags::all(), capabilities(features))
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string_with_path(source, name)));
    (module, info)
}

#[test]
fn every_shader_file_validates() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(shaders_dir())
        .expect("shaders/ directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .wgsl files in {:?}", shaders_dir());
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let file = std::fs::read_to_string(path).expect("read shader");
        // Each file with the constants the engine generates for it.
        let family = ShaderFamily::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .unwrap_or_else(|| panic!("{name} is not a ShaderFamily"));
        let source = format!(
            "{}{}{file}",
            family.prelude(),
            ModuleKey {
                family,
                features: ShaderFeatures::default()
            }
            .flavor_prelude()
        );
        let (module, _) = parse_and_validate(&name, &source);
        assert!(
            module
                .entry_points
                .iter()
                .any(|e| e.stage == naga::ShaderStage::Compute),
            "{name}: no compute entry point"
        );
        eprintln!("{name}: ok ({} entry points)", module.entry_points.len());
    }
    // Every file is a family the engine loads, and every family is a file
    // (the engine embeds the same text with include_str!).
    for family in ShaderFamily::ALL {
        let on_disk = std::fs::read_to_string(shaders_dir().join(family.name()))
            .unwrap_or_else(|e| panic!("{}: {e}", family.name()));
        assert_eq!(on_disk, family.file(), "{}", family.name());
    }
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(
            ShaderFamily::ALL.iter().any(|f| f.name() == name),
            "{name} is not a ShaderFamily"
        );
    }
}

#[test]
fn every_kernel_variant_validates_with_its_constants() {
    let mut flavors = std::collections::HashSet::new();
    for key in KernelKey::all() {
        let m = key.module();
        flavors.insert(m.features);
        let (module, info) = parse_and_validate_with(m.family.name(), &m.source(), m.features);
        let mut constants = naga::back::PipelineConstants::default();
        for (name, value) in key.constants() {
            constants.insert(name.to_string(), value);
        }
        let stage = (naga::ShaderStage::Compute, key.entry_point());
        let (module, info) = naga::back::pipeline_constants::process_overrides(
            &module,
            &info,
            Some(stage),
            &constants,
        )
        .unwrap_or_else(|e| panic!("{key:?}: constants {constants:?}: {e}"));
        let spv = naga::back::spv::write_vec(
            &module,
            &info,
            &naga::back::spv::Options::default(),
            Some(&naga::back::spv::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: key.entry_point().to_string(),
            }),
        )
        .unwrap_or_else(|e| panic!("{key:?}: SPIR-V: {e}"));
        eprintln!("{key:?}: ok ({} SPIR-V words)", spv.len());
    }
    assert!(
        flavors.contains(&ShaderFeatures {
            subgroups: true,
            f16: false
        }) && flavors.contains(&ShaderFeatures {
            subgroups: false,
            f16: true
        }),
        "no kernel variant uses subgroups, or none f16"
    );
}
