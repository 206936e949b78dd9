"""Invariants of template.yaml that cfn-lint cannot know: visibility vs timeout, the
redrive count vs the retry schedules, least-privilege policies, and that every
environment variable the code reads is set. Run by `make test` (scripts/test.sh)."""

import os
import re
import tomllib
import unittest

from cfnlint.decode import decode

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_SCHEDULE_ATTEMPTS = 8  # shared/src/retry.rs: 7 delays + the first attempt

FUNCTIONS = {
    # function resource -> (cargo binary, env vars it needs)
    "TriggerFunction": ("trigger", {"ROUTES_FILE", "QUEUE_URL", "DEAD_LETTER_QUEUE_URL", "DLQ_DEGRADED_THRESHOLD",
                                    "ORDERED_QUEUE_URL", "ORDERED_DEAD_LETTER_QUEUE_URL", "SECRET_PREFIX"}),
    "DeliverFunction": ("deliver", {"ROUTES_FILE", "QUEUE_URL", "DEAD_LETTER_QUEUE_URL", "ALLOW_PRIVATE_TARGETS",
                                    "ROUTER_BASE_URL",
                                    "ORDERED_QUEUE_URL", "ORDERED_DEAD_LETTER_QUEUE_URL", "SECRET_PREFIX"}),
    "TokenRefreshFunction": ("token-refresh", {"ROUTES_FILE", "SECRET_PREFIX"}),
}


def load_template():
    template, errors = decode(os.path.join(ROOT, "template.yaml"))
    assert not errors, errors
    return template


def routes_file():
    with open(os.path.join(ROOT, "infra", "config", "routes.toml"), "rb") as f:
        return tomllib.load(f)


def statements(function):
    out = []
    for policy in function["Properties"].get("Policies", []):
        out.extend(policy["Statement"])
    return out


def actions(function):
    return {a for s in statements(function) for a in s["Action"]}


def secret_patterns(function, action):
    pats = []
    for s in statements(function):
        if action in s["Action"]:
            res = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
            for r in res:
                sub = r.get("Fn::Sub") if isinstance(r, dict) else None
                if sub:
                    pats.append(sub.split(":secret:")[1])
    return pats


class TemplateInvariants(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t = load_template()
        cls.res = cls.t["Resources"]
        cls.params = cls.t["Parameters"]

    def test_queue_visibility_is_at_least_six_times_the_deliver_timeout(self):
        deliver = self.res["DeliverFunction"]["Properties"]
        self.assertEqual(deliver["Timeout"], {"Ref": "DeliverTimeoutSeconds"})
        vis = self.res["DeliveryQueue"]["Properties"]["VisibilityTimeout"]
        self.assertEqual(vis, {"Fn::FindInMap": ["VisibilityFor", {"Ref": "DeliverTimeoutSeconds"}, "Seconds"]})
        allowed = self.params["DeliverTimeoutSeconds"]["AllowedValues"]
        mapping = self.t["Mappings"]["VisibilityFor"]
        for timeout in allowed:
            self.assertGreaterEqual(mapping[timeout]["Seconds"], 6 * int(timeout), timeout)
        self.assertIn(self.params["DeliverTimeoutSeconds"]["Default"], allowed)
        # Longest route timeout (30 s) plus an enrich lookup (30 s) fits the smallest timeout.
        self.assertGreaterEqual(min(int(v) for v in allowed), 60)

    def test_max_receive_count_is_above_every_schedules_attempts(self):
        routes = routes_file().get("route", [])
        attempts = [len(r.get("retry", {}).get("schedule", [0] * (DEFAULT_SCHEDULE_ATTEMPTS - 1))) + 1 for r in routes]
        longest = max(attempts + [DEFAULT_SCHEDULE_ATTEMPTS])
        p = self.params["MaxReceiveCount"]
        self.assertGreater(int(p["Default"]), longest)
        self.assertGreater(int(p["MinValue"]), DEFAULT_SCHEDULE_ATTEMPTS)
        redrive = self.res["DeliveryQueue"]["Properties"]["RedrivePolicy"]
        self.assertEqual(redrive["maxReceiveCount"], {"Ref": "MaxReceiveCount"})
        self.assertEqual(redrive["deadLetterTargetArn"], {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]})

    def test_the_ordered_queue_outlasts_a_days_refusals(self):
        # SQS FIFO counts every put-back; an open circuit's cool-down grows to 10 minutes.
        p = self.params["OrderedMaxReceiveCount"]
        self.assertGreaterEqual(int(p["Default"]), 24 * 6 + DEFAULT_SCHEDULE_ATTEMPTS)
        self.assertGreater(int(p["MinValue"]), DEFAULT_SCHEDULE_ATTEMPTS)
        redrive = self.res["OrderedDeliveryQueue"]["Properties"]["RedrivePolicy"]
        self.assertEqual(redrive["maxReceiveCount"], {"Ref": "OrderedMaxReceiveCount"})

    def test_dead_letters_are_kept_longer_than_deliveries(self):
        q = self.res["DeliveryQueue"]["Properties"]["MessageRetentionPeriod"]
        d = self.res["DeadLetterQueue"]["Properties"]["MessageRetentionPeriod"]
        self.assertGreater(d, q)
        self.assertEqual(d, 1209600, "the SQS maximum: 14 days")

    def test_the_deliver_event_source_reports_batch_item_failures(self):
        ev = self.res["DeliverFunction"]["Properties"]["Events"]["Deliveries"]
        self.assertEqual(ev["Type"], "SQS")
        p = ev["Properties"]
        self.assertEqual(p["FunctionResponseTypes"], ["ReportBatchItemFailures"])
        self.assertEqual(p["BatchSize"], {"Ref": "DeliverBatchSize"})
        self.assertEqual(p["ScalingConfig"]["MaximumConcurrency"], {"Ref": "DeliverMaxConcurrency"})
        self.assertLessEqual(int(self.params["DeliverBatchSize"]["MaxValue"]), 10)

    def test_functions_are_arm64_al2023_cargo_lambda_builds_with_json_logs(self):
        g = self.t["Globals"]["Function"]
        self.assertEqual(g["Architectures"], ["arm64"])
        self.assertEqual(g["Runtime"], "provided.al2023")
        self.assertEqual(g["LoggingConfig"]["LogFormat"], "JSON")
        for name, (binary, _) in FUNCTIONS.items():
            md = self.res[name]["Metadata"]
            self.assertEqual(md["BuildMethod"], "rust-cargolambda")
            self.assertEqual(md["BuildProperties"]["Binary"], binary)
            with open(os.path.join(ROOT, "functions", binary, "Cargo.toml"), "rb") as f:
                bins = [b["name"] for b in tomllib.load(f).get("bin", [])]
            self.assertIn(binary, bins, f"functions/{binary} builds a binary named {binary}")

    def test_every_function_logs_to_a_log_group_of_the_stack_with_a_retention(self):
        p = self.params["LogRetentionDays"]
        self.assertEqual(int(p["Default"]), 30)
        self.assertIn(30, [int(v) for v in p["AllowedValues"]])
        groups = {k for k, v in self.res.items() if v["Type"] == "AWS::Logs::LogGroup"}
        for name, (binary, _) in FUNCTIONS.items():
            logging = self.res[name]["Properties"]["LoggingConfig"]
            self.assertEqual(logging["LogFormat"], "JSON", name)
            group = logging["LogGroup"]["Ref"]
            self.assertIn(group, groups, name)
            props = self.res[group]["Properties"]
            self.assertEqual(props["RetentionInDays"], {"Ref": "LogRetentionDays"}, group)
            # One name per stack and function: two stacks in one account never share one.
            self.assertEqual(props["LogGroupName"], {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}/{binary}"})

    def test_samconfig_at_the_root_has_every_environment_and_only_real_parameters(self):
        self.assertFalse(os.path.exists(os.path.join(ROOT, "infra", "samconfig.toml")),
                         "one samconfig.toml, at the root")
        with open(os.path.join(ROOT, "samconfig.toml"), "rb") as f:
            config = tomllib.load(f)
        stacks = set()
        for env in ("default", "dev", "prod"):
            build = config[env]["build"]["parameters"]
            self.assertTrue(build["beta_features"], f"{env}: SAM builds Rust with beta features only")
            deploy = config[env]["deploy"]["parameters"]
            self.assertEqual(deploy["capabilities"], "CAPABILITY_IAM")
            self.assertTrue(deploy["resolve_s3"])
            self.assertIn("region", deploy)
            overrides = deploy.get("parameter_overrides", "")
            for key, value in re.findall(r'(\w+)="([^"]*)"', overrides):
                self.assertIn(key, self.params, f"{env}: {key} is not a template parameter")
                self.assertNotEqual(value, "", f"{env}: {key} set to empty overrides the template's default")
                allowed = self.params[key].get("AllowedValues")
                if allowed:
                    self.assertIn(value, [str(a) for a in allowed], f"{env}: {key}")
            if env != "default":
                stacks.add(deploy["stack_name"])
        self.assertEqual(len(stacks), 2, "dev and prod are different stacks")
        self.assertFalse(config["dev"]["deploy"]["parameters"]["confirm_changeset"], "dev deploys unattended")
        self.assertTrue(config["prod"]["deploy"]["parameters"]["confirm_changeset"], "prod asks")

    def test_the_readme_lists_every_template_parameter_with_its_default(self):
        with open(os.path.join(ROOT, "README.md")) as f:
            readme = f.read()
        for name, p in self.params.items():
            row = re.search(r"^\s*\| `%s` \| ([^|]*) \|" % name, readme, re.M)
            self.assertIsNotNone(row, f"README.md's parameter table lacks {name}")
            default = str(p.get("Default", ""))
            shown = row.group(1).strip()
            self.assertEqual(shown, default or "(none)", f"{name}'s default in README.md")

    def test_http_api_has_the_three_routes(self):
        events = self.res["TriggerFunction"]["Properties"]["Events"]
        routes = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in events.values()}
        self.assertEqual(routes, {("POST", "/api/v2/webhooks/trigger"), ("GET", "/api/v2/health"),
                                  ("POST", "/api/v2/webhooks/smoke")})

    def test_the_smoke_route_reaches_the_stacks_own_sink(self):
        # The shipped routes file's smoke route is a path on the router; the deliver
        # function learns the API's address from ROUTER_BASE_URL, the very API whose
        # TriggerUrl the smoke script posts to.
        route = next(r for r in routes_file()["route"] if r["name"] == "router-smoke")
        self.assertEqual(route["target_url"], "/api/v2/webhooks/smoke")
        self.assertEqual(route["triggers"], [{"event_type": "custom", "name": "router-smoke"}])
        self.assertIn("signing", routes_file(), "the sink takes only signed deliveries")
        base = self.res["DeliverFunction"]["Properties"]["Environment"]["Variables"]["ROUTER_BASE_URL"]["Fn::Sub"]
        trigger_url = self.t["Outputs"]["TriggerUrl"]["Value"]["Fn::Sub"]
        self.assertEqual(trigger_url, base + "/api/v2/webhooks/trigger")

    def test_the_deploy_workflow_tests_builds_deploys_and_smoke_checks_dev(self):
        with open(os.path.join(ROOT, ".github", "workflows", "deploy.yml")) as f:
            wf = f.read()
        with open(os.path.join(ROOT, "samconfig.toml"), "rb") as f:
            dev_stack = tomllib.load(f)["dev"]["deploy"]["parameters"]["stack_name"]
        steps = ["./.ci/run", "./scripts/sam-build.sh", "sam deploy --config-env dev",
                 f"./scripts/smoke.sh --stack {dev_stack}"]
        positions = [wf.find(step) for step in steps]
        self.assertNotIn(-1, positions, steps)
        self.assertEqual(positions, sorted(positions), "in this order")
        with open(os.path.join(ROOT, "README.md")) as f:
            self.assertIn(f"scripts/smoke.sh --stack {dev_stack}", f.read())

    def test_token_refresh_runs_on_a_schedule_one_at_a_time(self):
        p = self.res["TokenRefreshFunction"]["Properties"]
        self.assertEqual(p["ReservedConcurrentExecutions"], 1)
        ev = p["Events"]["Schedule"]
        self.assertIn(ev["Type"], ("Schedule", "ScheduleV2"))
        self.assertEqual(ev["Properties"]["ScheduleExpression"], {"Ref": "TokenRefreshSchedule"})

    def test_each_function_may_do_only_what_it_needs(self):
        self.assertEqual(
            actions(self.res["TriggerFunction"]),
            {"sqs:SendMessage", "sqs:GetQueueAttributes", "secretsmanager:GetSecretValue"},
        )
        self.assertEqual(
            actions(self.res["DeliverFunction"]),
            {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes",
             "sqs:SendMessage", "secretsmanager:GetSecretValue"},
        )
        self.assertEqual(
            actions(self.res["TokenRefreshFunction"]),
            {"secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue", "secretsmanager:CreateSecret"},
        )
        # The trigger sends only to the delivery queues; the deliver function to the DLQs and
        # (reply jobs) to the standard delivery queue.
        def sends_to(fn):
            out = set()
            for s in statements(self.res[fn]):
                if "sqs:SendMessage" in s["Action"]:
                    rs = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
                    out |= {r["Fn::GetAtt"][0] for r in rs}
            return out
        self.assertEqual(sends_to("TriggerFunction"), {"DeliveryQueue", "OrderedDeliveryQueue"})
        self.assertEqual(sends_to("DeliverFunction"),
                         {"DeadLetterQueue", "OrderedDeadLetterQueue", "DeliveryQueue"})
        # Secrets, by the naming convention.
        self.assertEqual(sorted(secret_patterns(self.res["TriggerFunction"], "secretsmanager:GetSecretValue")),
                         ["${AWS::StackName}/tokens/*"])
        # The trigger's two stack secrets are granted exactly, by ARN (their Ref), so a secret
        # named `outbound/signing-key-other` or `ingest/api-key2` is not readable.
        exact = [r for st in statements(self.res["TriggerFunction"])
                 for r in (st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]])
                 if isinstance(r, dict) and "Ref" in r]
        self.assertEqual(sorted(r["Ref"] for r in exact), ["IngestKeySecret", "SigningKeySecret"])
        for name in ("IngestKeySecret", "SigningKeySecret"):
            self.assertEqual(self.res[name]["Type"], "AWS::SecretsManager::Secret")
        self.assertEqual(sorted(secret_patterns(self.res["DeliverFunction"], "secretsmanager:GetSecretValue")),
                         ["${AWS::StackName}/outbound/*", "${AWS::StackName}/tokens/*"])
        self.assertEqual(secret_patterns(self.res["TokenRefreshFunction"], "secretsmanager:PutSecretValue"),
                         ["${AWS::StackName}/tokens/*"])
        for fn in FUNCTIONS:
            for s in statements(self.res[fn]):
                self.assertNotIn("*", s["Action"])
                self.assertFalse(any(a.endswith(":*") for a in s["Action"]), s)
                self.assertNotEqual(s["Resource"], "*")

    def test_the_shipped_routes_files_secrets_are_readable_by_whom_needs_them(self):
        # Secret ids are relative: the functions read them under SECRET_PREFIX (the stack's
        # name), which is what the IAM patterns above allow. The examples follow the same
        # naming, so any of them can be deployed as it is.
        for path in [os.path.join("infra", "config", "routes.toml"),
                     os.path.join("examples", "routes.toml"),
                     os.path.join("examples", "cognigy.routes.toml")]:
            with open(os.path.join(ROOT, path), "rb") as f:
                r = tomllib.load(f)
            profiles = r.get("auth", {})
            ingest = r.get("ingest", {}).get("auth")
            for name, p in profiles.items():
                if p["type"] == "oauth2":
                    self.assertTrue(p["credentials_secret"].startswith("credentials/"), (path, name))
                    self.assertTrue(p["token_secret"].startswith("tokens/"), (path, name))
                elif name == ingest:
                    self.assertTrue(p["secret"].startswith("ingest/"), (path, name))
                else:
                    self.assertTrue(p["secret"].startswith("outbound/"), (path, name))
            if "signing" in r:
                self.assertTrue(r["signing"]["secret"].startswith("outbound/"), path)
            # Cognigy endpoints' URL tokens are outbound secrets: deliver reads them.
            for name, c in r.get("cognigy", {}).items():
                self.assertTrue(c["url_token_secret"].startswith("outbound/"), (path, name))
        # The template creates every secret the shipped file names, under the stack's name,
        # except the OAuth2 tokens (token-refresh writes those) and the client credentials
        # (only their owner has them).
        r = routes_file()
        profiles = r.get("auth", {})
        prefix = "${AWS::StackName}/"
        created = set()
        for v in self.res.values():
            if v["Type"] == "AWS::SecretsManager::Secret":
                name = v["Properties"]["Name"]["Fn::Sub"]
                self.assertTrue(name.startswith(prefix), name)
                created.add(name[len(prefix):])
        named = {p["secret"] for p in profiles.values() if p["type"] != "oauth2"}
        named |= {c["url_token_secret"] for c in r.get("cognigy", {}).values()}
        if "signing" in r:
            named.add(r["signing"]["secret"])
        self.assertEqual(named, created)
        env = self.t["Globals"]["Function"]["Environment"]["Variables"]
        self.assertEqual(env["SECRET_PREFIX"], {"Fn::Sub": prefix})
        # A renamed secret (an upgrade from the old fixed names) must not take its value with it.
        for k, v in self.res.items():
            if v["Type"] == "AWS::SecretsManager::Secret":
                self.assertEqual(v.get("UpdateReplacePolicy"), "Retain", k)

    def test_every_environment_variable_the_code_reads_is_set(self):
        with open(os.path.join(ROOT, "shared", "src", "config.rs")) as f:
            read = set(re.findall(r'non_empty\("([A-Z_]+)"\)', f.read()))
        self.assertEqual(read, set().union(*(v for _, v in FUNCTIONS.values())),
                         "config.rs and this test's FUNCTIONS table disagree")
        globals_env = set(self.t["Globals"]["Function"]["Environment"]["Variables"])
        for name, (_, needed) in FUNCTIONS.items():
            own = set(self.res[name]["Properties"].get("Environment", {}).get("Variables", {}))
            self.assertEqual(needed - (globals_env | own), set(), name)
        self.assertEqual(self.t["Globals"]["Function"]["Environment"]["Variables"]["ROUTES_FILE"], "/opt/routes.toml")
        self.assertEqual(self.res["DeliverFunction"]["Properties"]["Environment"]["Variables"]["ALLOW_PRIVATE_TARGETS"], "false")

    def alarms(self):
        return {k: v["Properties"] for k, v in self.res.items() if v["Type"] == "AWS::CloudWatch::Alarm"}

    def test_alarms_watch_dlq_age_and_errors_and_notify_the_topic(self):
        alarms = self.alarms()
        self.assertEqual(set(alarms), {"DeadLetterAlarm", "OldestDeliveryAlarm", "DeliverErrorsAlarm", "TokenRefreshErrorsAlarm",
                                       "OrderedDeadLetterAlarm", "OrderedOldestDeliveryAlarm", "RetryAgeAlarm",
                                       "TriggerServerErrorsAlarm", "SecretUnusableAlarm"})
        for name, a in alarms.items():
            self.assertEqual(a["AlarmActions"], [{"Ref": "AlarmTopic"}], name)
            self.assertEqual(a["OKActions"], [{"Ref": "AlarmTopic"}], name)
            self.assertEqual(a["ComparisonOperator"], "GreaterThanOrEqualToThreshold", name)
            # Every metric here is sparse (an idle queue, no invocations, no retries): no data
            # is good news, never INSUFFICIENT_DATA or a breach.
            self.assertEqual(a["TreatMissingData"], "notBreaching", name)
            self.assertLessEqual(a.get("DatapointsToAlarm", 1), a["EvaluationPeriods"], name)
        dlq = alarms["DeadLetterAlarm"]
        self.assertEqual(dlq["Threshold"], {"Ref": "DeadLetterAlarmThreshold"})
        self.assertEqual(int(self.params["DeadLetterAlarmThreshold"]["Default"]), 1)
        self.assertEqual(dlq["Dimensions"][0]["Value"], {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]})
        self.assertEqual(alarms["OldestDeliveryAlarm"]["MetricName"], "ApproximateAgeOfOldestMessage")
        # The FIFO pair of ordered routes has the same two.
        self.assertEqual(alarms["OrderedDeadLetterAlarm"]["Dimensions"][0]["Value"],
                         {"Fn::GetAtt": ["OrderedDeadLetterQueue", "QueueName"]})
        self.assertEqual(alarms["OrderedOldestDeliveryAlarm"]["Dimensions"][0]["Value"],
                         {"Fn::GetAtt": ["OrderedDeliveryQueue", "QueueName"]})
        self.assertEqual(alarms["OrderedDeadLetterAlarm"]["Threshold"], {"Ref": "DeadLetterAlarmThreshold"})

    def test_stuck_retries_are_watched_by_retry_age_not_by_the_sqs_age_metric(self):
        # SQS leaves a message received three times or more out of ApproximateAgeOfOldestMessage
        # (standard queues), and every retry is a receive: a delivery failing for hours is
        # invisible there. The deliver function reports RetryAge instead (EMF, no dimensions).
        alarms = self.alarms()
        retry = alarms["RetryAgeAlarm"]
        self.assertEqual(retry["Namespace"], "CognigyWebhookRouter")
        self.assertEqual(retry["MetricName"], "RetryAge")
        self.assertEqual(retry.get("Dimensions", []), [], "RetryAge has no dimensions: both queues, every route")
        self.assertNotIn("Unit", retry, "a Unit the datapoints lack would hide every datapoint")
        self.assertEqual(retry["Statistic"], "Maximum")
        self.assertEqual(retry["Period"], 300)
        self.assertEqual(retry["Threshold"], {"Ref": "OldestMessageAlarmSeconds"})
        # Sparse datapoints: one breach fires, and OK waits an hour without one.
        self.assertEqual(retry["DatapointsToAlarm"], 1)
        self.assertGreaterEqual(retry["EvaluationPeriods"] * retry["Period"], 3600)
        # The queue-age alarms stay, for first attempts not taken; none claims the retries.
        age = {k: a for k, a in alarms.items() if a.get("MetricName") == "ApproximateAgeOfOldestMessage"}
        self.assertEqual(set(age), {"OldestDeliveryAlarm", "OrderedOldestDeliveryAlarm"})
        for name, a in age.items():
            self.assertIn("RetryAgeAlarm", a["AlarmDescription"], f"{name} says where failing deliveries show")
            self.assertEqual(a["Threshold"], {"Ref": "OldestMessageAlarmSeconds"}, name)

    def test_the_retry_age_alarm_watches_what_the_deliver_function_emits(self):
        with open(os.path.join(ROOT, "functions", "deliver", "src", "metrics.rs")) as f:
            metrics_src = f.read()
        namespace = re.search(r'pub const NAMESPACE: &str = "([^"]+)";', metrics_src)
        self.assertIsNotNone(namespace, "metrics.rs names its namespace in a NAMESPACE constant")
        self.assertEqual(self.alarms()["RetryAgeAlarm"]["Namespace"], namespace.group(1))
        self.assertIn('"RetryAge"', metrics_src, "deliver emits RetryAge")

    def test_alarm_windows_outlast_what_would_make_them_flap(self):
        alarms = self.alarms()
        window = lambda a: a["EvaluationPeriods"] * a["Period"]  # noqa: E731
        # `routerctl dlq` holds the dead letters it reads (in flight, not visible) for HOLD.
        with open(os.path.join(ROOT, "functions", "routerctl", "src", "dlq.rs")) as f:
            hold = re.search(r"const HOLD: Duration = Duration::from_secs\((\d+)\);", f.read())
        self.assertIsNotNone(hold, "dlq.rs's HOLD")
        for name in ("DeadLetterAlarm", "OrderedDeadLetterAlarm"):
            self.assertEqual(alarms[name]["DatapointsToAlarm"], 1, name)
            self.assertGreater(window(alarms[name]), int(hold.group(1)), name)
        # A batch that crashes the deliver function comes back once per visibility timeout.
        longest_visibility = max(v["Seconds"] for v in self.t["Mappings"]["VisibilityFor"].values())
        errors = alarms["DeliverErrorsAlarm"]
        self.assertEqual(errors["DatapointsToAlarm"], 1)
        self.assertGreaterEqual(window(errors), longest_visibility)
        self.assertEqual(errors["Dimensions"], [{"Name": "FunctionName", "Value": {"Ref": "DeliverFunction"}}])

    def test_failed_trigger_calls_are_watched_on_the_http_api(self):
        # A 5xx is an event Cognigy's call failed to hand over; the trigger answers 503 when
        # the queue refuses it, API Gateway 500 when the function fails.
        a = self.alarms()["TriggerServerErrorsAlarm"]
        self.assertEqual(self.res["HttpApi"]["Type"], "AWS::Serverless::HttpApi")
        self.assertEqual((a["Namespace"], a["MetricName"], a["Statistic"]), ("AWS/ApiGateway", "5xx", "Sum"))
        self.assertEqual(a["Dimensions"], [{"Name": "ApiId", "Value": {"Ref": "HttpApi"}}])
        self.assertEqual(a["Threshold"], 1)
        for ev in self.res["TriggerFunction"]["Properties"]["Events"].values():
            self.assertEqual(ev["Properties"]["ApiId"], {"Ref": "HttpApi"})

    def test_an_unusable_secret_is_counted_from_the_line_the_cache_logs(self):
        with open(os.path.join(ROOT, "shared", "src", "secret_cache.rs")) as f:
            cache_src = f.read()
        for name, group in (("TriggerSecretUnusableFilter", "TriggerLogGroup"),
                            ("DeliverSecretUnusableFilter", "DeliverLogGroup")):
            f = self.res[name]["Properties"]
            self.assertEqual(f["LogGroupName"], {"Ref": group}, name)
            phrase = f["FilterPattern"].strip('"')
            self.assertIn(f'"{phrase}:', cache_src, f"{name}: the cache logs '{phrase}: ...'")
            t = f["MetricTransformations"][0]
            self.assertEqual((t["MetricNamespace"], t["MetricName"]), ("CognigyWebhookRouter", "SecretUnusable"))
        a = self.alarms()["SecretUnusableAlarm"]
        self.assertEqual((a["Namespace"], a["MetricName"], a["Statistic"]), ("CognigyWebhookRouter", "SecretUnusable", "Sum"))

    def test_every_alarm_has_a_runbook_entry_its_description_links(self):
        with open(os.path.join(ROOT, "docs", "operations.md")) as f:
            doc = f.read()
        self.assertRegex(doc, r"(?m)^# Alarms$", "operations.md has an Alarms section")
        section = doc.split("\n# Alarms\n", 1)[1].split("\n# ", 1)[0]
        entries = set(re.findall(r"(?m)^## (\w+)$", section))
        alarms = self.alarms()
        self.assertEqual(entries, set(alarms), "one '## <logical id>' entry per alarm, and no stale ones")
        for name, a in alarms.items():
            # A heading that is just the id gets the anchor #<id in lower case> on GitHub.
            self.assertIn(f"docs/operations.md#{name.lower()}", a["AlarmDescription"], name)
            self.assertLessEqual(len(a["AlarmDescription"]), 1024, name)

    def test_ordered_routes_have_a_fifo_pair_consumed_with_partial_batches(self):
        q, dlq = self.res["OrderedDeliveryQueue"]["Properties"], self.res["OrderedDeadLetterQueue"]["Properties"]
        for p in (q, dlq):
            self.assertTrue(p["FifoQueue"])
            self.assertFalse(p["ContentBasedDeduplication"])
            self.assertTrue(p["QueueName"]["Fn::Sub"].endswith(".fifo"))
        self.assertEqual(q["RedrivePolicy"]["deadLetterTargetArn"], {"Fn::GetAtt": ["OrderedDeadLetterQueue", "Arn"]})
        source = self.res["DeliverFunction"]["Properties"]["Events"]["OrderedDeliveries"]["Properties"]
        self.assertEqual(source["Queue"], {"Fn::GetAtt": ["OrderedDeliveryQueue", "Arn"]})
        self.assertEqual(source["FunctionResponseTypes"], ["ReportBatchItemFailures"])
        # A session's later deliveries must not be received (and spend receives) with a
        # failing earlier one.
        self.assertEqual(source["BatchSize"], 1)
        sub = self.res["AlarmEmailSubscription"]
        self.assertEqual(sub["Condition"], "HasAlarmEmail")

    def test_the_dashboard_shows_what_the_functions_emit(self):
        body = self.res["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
        with open(os.path.join(ROOT, "functions", "deliver", "src", "metrics.rs")) as f:
            metrics_src = f.read()
        for metric in ("Delivered", "Retried", "DeadLettered", "DeliveryLatency"):
            self.assertIn(f'MetricName=\\"{metric}\\"', body)
            self.assertIn(f'"{metric}"', metrics_src, f"deliver emits {metric}")
        namespace = re.search(r'NAMESPACE: &str = "([^"]+)"', metrics_src)
        self.assertIsNotNone(namespace, "metrics.rs names its namespace in a NAMESPACE constant")
        self.assertIn("{%s,Route}" % namespace.group(1), body)
        for needle in ("'p50'", "'p99'", "ApproximateNumberOfMessagesVisible", '"Errors"'):
            self.assertIn(needle, body)


if __name__ == "__main__":
    unittest.main()
