"""scripts/doc_paths.py: a Markdown file naming a repository path that does not exist fails
`make test`; one naming only existing paths (or placeholders) passes."""

import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "doc_paths.py")


def check(text):
    with tempfile.NamedTemporaryFile("w", suffix=".md", dir=ROOT, delete=False) as f:
        f.write(text)
    try:
        rel = os.path.relpath(f.name, ROOT)
        return subprocess.run([sys.executable, SCRIPT, rel], cwd=ROOT, capture_output=True, text=True)
    finally:
        os.unlink(f.name)


class DocPaths(unittest.TestCase):
    def test_a_missing_path_fails_and_is_named(self):
        r = check("See `shared/src/domain.rs` and [the guard](functions/deliver/src/nope.rs).\n")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("`shared/src/domain.rs` does not exist", r.stdout)
        self.assertIn("`functions/deliver/src/nope.rs` does not exist", r.stdout)

    def test_existing_paths_and_placeholders_pass(self):
        r = check(
            "`shared/src/breaker.rs`, `functions/deliver/src/http.rs:88`, `docs/operations.md#alarms`,\n"
            "`functions/<crate>/src/*.rs`, [`Makefile`](Makefile), `scripts/` and https://example.com/shared/x.rs\n"
        )
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
