//! Every command block of README.md and docs/operations.md, run as a reader would
//! (`scripts/doc_commands.py`): README's on the embedded queue, operations.md's against a
//! stack on moto_server with this `routerctl` playing its functions. A renamed flag, a
//! changed output or a wrong path in the docs fails here.

use std::process::Command;

#[test]
fn the_docs_command_blocks_run_as_written() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let endpoint = router_tests::moto_endpoint();
    let out = Command::new(format!("{root}/.venv/bin/python"))
        .arg(format!("{root}/scripts/doc_commands.py"))
        .args(["--routerctl", env!("CARGO_BIN_EXE_routerctl")])
        .env("MOTO_ENDPOINT", endpoint)
        .output()
        .expect("run scripts/doc_commands.py with .venv's python (make test creates .venv)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    // Both files' blocks ran, not an empty selection.
    assert!(text.contains("ok   README.md:"), "{text}");
    assert!(text.contains("ok   docs/operations.md:"), "{text}");
    assert!(text.contains(", 0 failed"), "{text}");
}
