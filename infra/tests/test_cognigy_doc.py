"""The code blocks of docs/cognigy.md do what the text says: the HTTP Request node's JSON
body is JSON Cognigy's editor accepts and, once its CognigyScript is evaluated by Cognigy's
rules, an event the trigger accepts with `score` a number and the user's text intact; the
form body survives quotes, line breaks, `&` and `+`; the routes-file blocks parse, name
their secrets relative to the stack's prefix, and their templates render to JSON.

CognigyScript is JavaScript; the few constructs the doc uses are evaluated here by a small
interpreter (anything else fails the test, so a new construct needs a look). Run by
`make test` (scripts/test.sh); stdlib only."""

import json
import math
import os
import re
import tomllib
import unittest
from urllib.parse import quote

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "cognigy.md")

# A Cognigy Input object with a hostile text: every character that breaks naive quoting
# in JSON or in a form body.
INPUT = {
    "inputId": "5a91d194fde28b0011ce2424",
    "intent": "handover",
    "intentScore": 0.92,
    "userId": "usr_1",
    "sessionId": "sess_1",
    "channel": "webchat",
    "text": 'He said "hi" & left;\nline 2 = 50% + more \\ #1 ✓ é',
}

# The trigger's schema (shared/src/event, domain).
EVENT_FIELDS = {"id", "event_type", "name", "score", "user_id", "session_id", "data"}
EVENT_TYPES = {"intent", "entity", "flow_start", "flow_end", "custom"}
EVENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")

# Secret id prefixes the stack's IAM policies allow (the functions put the stack's name in
# front of them).
SECRET_PREFIXES = ("ingest/", "outbound/", "credentials/", "tokens/")


def read_doc():
    with open(DOC, encoding="utf-8") as f:
        return f.read()


def marked_block(doc, name):
    """The fenced block right after `<!-- checked by ...: name -->`."""
    m = re.search(r"<!-- checked by infra/tests/test_cognigy_doc\.py: %s -->\n```\w*\n(.*?)```" % re.escape(name),
                  doc, re.S)
    assert m, f"docs/cognigy.md has no block marked {name}"
    return m.group(1)


def fenced_blocks(doc, lang):
    return re.findall(r"^```%s\n(.*?)^```" % re.escape(lang), doc, re.S | re.M)


# --- a tiny CognigyScript (JavaScript) evaluator -------------------------------------------

TOKEN = re.compile(r"""\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
                   r"""|(?P<id>[A-Za-z_$][A-Za-z0-9_$]*)|(?P<op>[.,:(){}+]))""")


def js_string(v):
    """JavaScript's String(v)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else repr(v)
    if isinstance(v, (dict, list)):
        return "[object Object]" if isinstance(v, dict) else ",".join(js_string(x) for x in v)
    return str(v)


def js_number(v):
    """JavaScript's Number(v), as Cognigy's `"type": "number"` conversion would use it."""
    if v is None:
        return 0.0
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return float(str(v).strip() or 0)
    except ValueError:
        return math.nan


class Script:
    """Evaluates one expression: literals, `input.a.b`, `a + b`, object literals,
    `encodeURIComponent(x)` and `JSON.stringify(x)`."""

    def __init__(self, source, scope):
        self.tokens, pos = [], 0
        source = source.strip()
        while pos < len(source):
            m = TOKEN.match(source, pos)
            if not m or m.end() == pos:
                raise ValueError(f"cannot read CognigyScript at {source[pos:]!r}")
            self.tokens.append((m.lastgroup, m.group(m.lastgroup)))
            pos = m.end()
        self.i, self.scope = 0, scope

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else (None, None)

    def take(self, value=None):
        tok = self.peek()
        if tok[0] is None or (value is not None and tok[1] != value):
            raise ValueError(f"expected {value!r}, got {tok[1]!r}")
        self.i += 1
        return tok

    def run(self):
        v = self.sum()
        if self.i != len(self.tokens):
            raise ValueError(f"unexpected {self.peek()[1]!r}")
        return v

    def sum(self):
        v = self.primary()
        while self.peek() == ("op", "+"):
            self.take("+")
            w = self.primary()
            if isinstance(v, str) or isinstance(w, str):
                v = js_string(v) + js_string(w)
            else:
                v = v + w
        return v

    def primary(self):
        kind, text = self.take()
        if kind == "num":
            return float(text)
        if kind == "str":
            return json.loads('"%s"' % text[1:-1].replace('"', '\\"')) if text[0] == "'" else json.loads(text)
        if text == "(":
            v = self.sum()
            self.take(")")
            return v
        if text == "{":
            obj = {}
            while self.peek() != ("op", "}"):
                key = self.take()[1]
                self.take(":")
                obj[key] = self.sum()
                if self.peek() == ("op", ","):
                    self.take(",")
            self.take("}")
            return obj
        if kind != "id":
            raise ValueError(f"unexpected {text!r}")
        path = [text]
        while self.peek() == ("op", "."):
            self.take(".")
            path.append(self.take()[1])
        if self.peek() == ("op", "("):
            self.take("(")
            arg = self.sum()
            self.take(")")
            name = ".".join(path)
            if name == "encodeURIComponent":
                return quote(js_string(arg), safe="-_.!~*'()")
            if name == "JSON.stringify":
                return json.dumps(arg, ensure_ascii=False, separators=(",", ":"))
            raise ValueError(f"the test does not know {name}()")
        value = self.scope
        for part in path:
            if not isinstance(value, dict) or part not in value:
                raise ValueError(f"{'.'.join(path)} is not in the sample Cognigy objects")
            value = value[part]
        return value


def cognigy(expr):
    return Script(expr, {"input": INPUT, "ci": INPUT}).run()


def render_text_field(template):
    """A CognigyScript text field: each `{{ expr }}` becomes its value as a string."""
    return re.sub(r"\{\{(.*?)\}\}", lambda m: js_string(cognigy(m.group(1))), template)


def render_json_field(value):
    """A CognigyScript JSON field: `{"$cs": {"script", "type"}}` becomes a typed value, a
    string that is one `{{ expr }}` becomes that value as a string."""
    if isinstance(value, dict):
        if "$cs" in value:
            spec = value["$cs"]
            v = cognigy(spec["script"])
            kind = spec.get("type")
            if kind == "number":
                return js_number(v)
            if kind == "string":
                return js_string(v)
            return v
        return {k: render_json_field(v) for k, v in value.items()}
    if isinstance(value, list):
        return [render_json_field(v) for v in value]
    if isinstance(value, str) and "{{" in value:
        return render_text_field(value)
    return value


# --- the trigger's side ----------------------------------------------------------------------

def form_fields(body):
    """shared/src/event: split on `&` and the first `=`, `+` is a space, `%XX` strict,
    an empty value counts as absent."""
    out = {}
    for pair in filter(None, body.split("&")):
        key, _, value = pair.partition("=")
        key, value = _percent_decode(key), _percent_decode(value)
        assert key not in out, f"form field {key} appears twice"
        if value:
            out[key] = value
    if "score" in out:
        out["score"] = float(out["score"].strip())
    if "data" in out:
        out["data"] = json.loads(out["data"])
    return out


def _percent_decode(s):
    raw, i = bytearray(), 0
    while i < len(s):
        c = s[i]
        if c == "+":
            raw += b" "
        elif c == "%":
            h = s[i + 1:i + 3]
            assert re.fullmatch(r"[0-9A-Fa-f]{2}", h), f"bad percent escape in {s!r}"
            raw.append(int(h, 16))
            i += 2
        else:
            raw += c.encode("utf-8")
        i += 1
    return raw.decode("utf-8")


class EventChecks:
    def assertAcceptedEvent(self, event):
        self.assertIsInstance(event, dict)
        self.assertLessEqual(set(event), EVENT_FIELDS, "unknown top-level fields")
        self.assertIn(event.get("event_type"), EVENT_TYPES)
        if "id" in event:
            self.assertRegex(event["id"], EVENT_ID)
        for field in ("name", "user_id", "session_id"):
            if field in event:
                self.assertIsInstance(event[field], str, field)
        if "score" in event:
            self.assertIsInstance(event["score"], float, "score must be a number")
            self.assertTrue(math.isfinite(event["score"]))
        if "data" in event:
            self.assertIsInstance(event["data"], dict, "data must be an object")


class TheNodesBodies(unittest.TestCase, EventChecks):
    @classmethod
    def setUpClass(cls):
        cls.doc = read_doc()

    def json_event(self):
        raw = marked_block(self.doc, "cognigy-json-body")
        return render_json_field(json.loads(raw))

    def form_event(self):
        template = marked_block(self.doc, "cognigy-form-body").strip()
        self.assertNotIn("\n", template, "the form body is one line")
        body = render_text_field(template)
        self.assertNotRegex(body, r"[\s\"{}]", "everything outside literals is percent-encoded")
        return form_fields(body)

    def test_the_json_body_is_plain_json_so_the_editor_takes_it(self):
        raw = marked_block(self.doc, "cognigy-json-body")
        body = json.loads(raw)  # raises if the editor would refuse it
        self.assertIsInstance(body, dict)
        # Typed values wherever a type or the user's text matters.
        self.assertIn("$cs", body["score"])
        self.assertEqual(body["score"]["$cs"]["type"], "number")
        self.assertIn("$cs", body["data"]["text"])

    def test_the_json_body_sends_score_as_a_number_and_the_text_intact(self):
        event = self.json_event()
        self.assertAcceptedEvent(event)
        self.assertEqual(event["score"], 0.92)
        self.assertEqual(event["data"]["text"], INPUT["text"])
        self.assertEqual(event["user_id"], INPUT["userId"])
        self.assertEqual(event["session_id"], INPUT["sessionId"])
        # The router receives what Cognigy serialises: still the same after a round trip.
        self.assertEqual(json.loads(json.dumps(event)), event)

    def test_the_form_body_keeps_data_a_json_object_through_quotes_newlines_and_ampersands(self):
        event = self.form_event()
        self.assertAcceptedEvent(event)
        self.assertEqual(event["score"], 0.92)
        self.assertEqual(event["data"]["text"], INPUT["text"])

    def test_both_bodies_send_the_same_event(self):
        self.assertEqual(self.json_event(), self.form_event())

    def test_the_event_id_is_stable_per_message_and_names_the_event(self):
        event = self.json_event()
        self.assertIn(INPUT["inputId"], event["id"])
        self.assertNotEqual(event["id"], INPUT["inputId"], "a suffix tells two events of one message apart")


class TheRoutesBlocks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.doc = read_doc()
        cls.blocks = fenced_blocks(cls.doc, "toml")

    def test_there_are_routes_blocks_and_each_parses(self):
        self.assertGreaterEqual(len(self.blocks), 2)
        for block in self.blocks:
            tomllib.loads(block)

    def test_secret_ids_are_relative_to_the_stacks_prefix(self):
        for block in self.blocks:
            r = tomllib.loads(block)
            ids = []
            for name, p in r.get("auth", {}).items():
                if p.get("type") == "oauth2":
                    self.assertTrue(p["credentials_secret"].startswith("credentials/"), name)
                    self.assertTrue(p["token_secret"].startswith("tokens/"), name)
                    ids += [p["credentials_secret"], p["token_secret"]]
                else:
                    expected = "ingest/" if name == r.get("ingest", {}).get("auth") else "outbound/"
                    self.assertTrue(p["secret"].startswith(expected), f"[auth.{name}] secret")
                    ids.append(p["secret"])
            for name, c in r.get("cognigy", {}).items():
                self.assertTrue(c["url_token_secret"].startswith("outbound/"), f"[cognigy.{name}]")
                ids.append(c["url_token_secret"])
            if "signing" in r:
                self.assertTrue(r["signing"]["secret"].startswith("outbound/"))
                ids.append(r["signing"]["secret"])
            for i in ids:
                self.assertTrue(i.startswith(SECRET_PREFIXES), i)

    def test_every_template_renders_to_json(self):
        # Each expression of a payload template is a `| tojson`, so a JSON value stands in
        # for it; the names are those the route's context has.
        contexts = {
            "template": {"event", "route", "delivery", "now", "external"},
            "reply.template": {"event", "route", "delivery", "now", "response"},
            "reply.on_failure": {"event", "route", "delivery", "now", "failure"},
        }
        seen = 0
        for block in self.blocks:
            for route in tomllib.loads(block).get("route", []):
                for where, names in contexts.items():
                    node = route
                    for part in where.split("."):
                        node = node.get(part) if isinstance(node, dict) else None
                    if not isinstance(node, str):
                        continue
                    seen += 1
                    for expr in re.findall(r"\{\{(.*?)\}\}", node, re.S):
                        self.assertRegex(expr, r"\|\s*tojson\s*$", f"{route['name']} {where}: {expr}")
                        code = re.sub(r'"[^"]*"|\'[^\']*\'', "", expr.rsplit("|", 1)[0])
                        used = set(re.findall(r"(?<![.\w])([A-Za-z_]\w*)", code))
                        self.assertTrue(used, f"{route['name']} {where}: {expr}")
                        self.assertLessEqual(used, names, f"{route['name']} {where}: {expr}")
                    json.loads(re.sub(r"\{\{.*?\}\}", '"x"', node, flags=re.S))
        self.assertGreaterEqual(seen, 3)

    def test_the_idempotency_example_puts_delivery_id_in_the_body(self):
        templates = [r.get("template", "") for b in self.blocks for r in tomllib.loads(b).get("route", [])]
        self.assertTrue(any("delivery.id" in t for t in templates))


class TheCommands(unittest.TestCase):
    def test_the_key_command_names_the_dev_stacks_secret(self):
        with open(os.path.join(ROOT, "samconfig.toml"), "rb") as f:
            stack = tomllib.load(f)["dev"]["deploy"]["parameters"]["stack_name"]
        self.assertIn(
            f"aws secretsmanager get-secret-value --secret-id {stack}/ingest/api-key --query SecretString --output text",
            read_doc(),
        )


if __name__ == "__main__":
    unittest.main()
