"""scripts/long_functions.py: a production function over 70 lines fails `make test` unless a
`// Long:` comment above it says why; test code, declarations and short functions do not."""

import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "long_functions.py")


def body(n):
    return "".join(f"    let x{i} = {i};\n" for i in range(n))


def check(files):
    """Runs the script on a crate made of `files` (path under the crate -> source)."""
    with tempfile.TemporaryDirectory() as d:
        for path, text in files.items():
            full = os.path.join(d, "demo", path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as f:
                f.write(text)
        return subprocess.run([sys.executable, SCRIPT, d], capture_output=True, text=True)


class LongFunctions(unittest.TestCase):
    def test_a_long_function_without_a_reason_fails_with_its_place(self):
        r = check({"src/lib.rs": "pub fn short() {\n}\n\npub async fn long(a: u8) -> u8 {\n" + body(80) + "}\n"})
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("demo/src/lib.rs:4: `long` is 82 lines", r.stderr)
        self.assertNotIn("short", r.stdout + r.stderr)

    def test_a_reason_above_it_lets_it_pass_and_is_shown(self):
        r = check({"src/lib.rs": "/// Does it.\n// Long: one table.\n#[inline]\nfn long() {\n" + body(80) + "}\n"})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("82 lines  long", r.stdout)
        self.assertIn("(reason given)", r.stdout)

    def test_methods_count_to_their_own_closing_brace(self):
        src = "impl A {\n    fn a(&self) {\n" + body(75).replace("\n    ", "\n        ").replace("    let", "        let", 1) + "    }\n\n    fn b(&self) {}\n}\n"
        r = check({"src/a.rs": src})
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("`a` is 77 lines", r.stderr)

    def test_test_code_and_declarations_are_left_out(self):
        long = "fn long() {\n" + body(80) + "}\n"
        r = check({
            "src/lib.rs": "pub trait T {\n    fn declared(&self);\n}\n\n#[cfg(test)]\nmod tests {\n" + long + "}\n",
            "src/x/tests.rs": long,
            "src/testing/mod.rs": long,
            "src/routes/tests/load.rs": long,
            "tests/it.rs": long,
        })
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stderr, "")


if __name__ == "__main__":
    unittest.main()
