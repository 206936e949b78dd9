"""scripts/module_graph.py: sibling modules that import each other (directly, through a
parent's re-export, or around a longer loop) fail `make test` with the cycle named; a child
naming its parent, test code and one-way imports do not."""

import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "module_graph.py")


def graph(files):
    """Runs the script on a crate made of `files` (path under src/ -> source)."""
    with tempfile.TemporaryDirectory() as d:
        crate = os.path.join(d, "demo")
        os.makedirs(os.path.join(crate, "src"))
        with open(os.path.join(crate, "Cargo.toml"), "w") as f:
            f.write('[package]\nname = "demo"\n')
        for path, text in files.items():
            full = os.path.join(crate, "src", path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as f:
                f.write(textwrap.dedent(text))
        return subprocess.run([sys.executable, SCRIPT, "--why", d], capture_output=True, text=True)


class ModuleGraph(unittest.TestCase):
    def test_two_siblings_importing_each_other_fail(self):
        r = graph({
            "lib.rs": "mod a;\nmod b;\n",
            "a.rs": "use crate::b::B;\npub struct A;\n",
            "b.rs": "use crate::{a::A, c};\npub struct B;\n",
        })
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("demo: a -> b -> a", r.stderr)
        self.assertIn("b -> a: b names crate::a::A", r.stderr)

    def test_a_loop_through_a_parents_re_export_and_super_fails(self):
        r = graph({
            "lib.rs": "pub mod q;\n",
            "q/mod.rs": "mod store;\nmod queue;\nmod ops;\npub use queue::Queue;\n",
            "q/store.rs": "use super::Queue;\n",
            "q/queue.rs": "use super::ops::Op;\npub struct Queue;\n",
            "q/ops.rs": "pub struct Op;\nfn f() -> super::store::Thing { todo!() }\n",
        })
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("demo::q: ops -> queue -> store -> ops", r.stderr)

    def test_one_way_imports_parents_and_tests_pass(self):
        r = graph({
            "lib.rs": "mod a;\nmod b;\npub struct Root;\n",
            "a.rs": "use crate::b::B;\nuse crate::Root;\n#[cfg(test)]\nmod tests {\n    use crate::a::*;\n}\n",
            "b.rs": "pub struct B;\n// crate::a::A is only named in a comment\n"
                    "#[cfg(test)]\nmod tests {\n    use crate::a::A;\n}\n",
            "b/tests.rs": "use crate::a::A;\n",
        })
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("a -> b", r.stdout)
        self.assertIn("b -> (nothing)", r.stdout)
        self.assertIn("no import cycle", r.stdout)


if __name__ == "__main__":
    unittest.main()
