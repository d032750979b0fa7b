//! The Pulumi YAML programs: generated only for the clouds of the file, every program and
//! stack file parsed, every `${…}` interpolation resolved against the program's resources,
//! variables and config, resource types from the providers' registries, `${VAR}` values kept
//! as config keys and never written, and snapshots of the programs per cloud and runtime.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::common::{self, cargo_allframe, cargo_allframe_with_env, listed, read};
use super::{REFERENCE_SERVICES, SENSORS, cases, planned, reference, tree};

/// The Pulumi files ignite plans for `toml`, by path.
fn pulumi(toml: &str) -> BTreeMap<String, String> {
    planned(toml)
        .into_iter()
        .filter(|(path, _)| path.starts_with("infrastructure/pulumi/"))
        .collect()
}

/// The resource types the programs may use, each checked against the Pulumi registry.
const TYPES: &[&str] = &[
    "pulumi:providers:aws",
    "pulumi:providers:gcp",
    "pulumi:pulumi:StackReference",
    "aws:apigatewayv2:Api",
    "aws:cloudwatch:EventBus",
    "aws:cloudwatch:EventRule",
    "aws:cloudwatch:EventTarget",
    "aws:cloudwatch:LogGroup",
    "aws:cloudwatch:MetricAlarm",
    "aws:dynamodb:Table",
    "aws:ec2:Eip",
    "aws:ec2:InternetGateway",
    "aws:ec2:NatGateway",
    "aws:ec2:RouteTable",
    "aws:ec2:RouteTableAssociation",
    "aws:ec2:SecurityGroup",
    "aws:ec2:Subnet",
    "aws:ec2:Vpc",
    "aws:ecr:Repository",
    "aws:ecs:Cluster",
    "aws:ecs:Service",
    "aws:ecs:TaskDefinition",
    "aws:glue:Registry",
    "aws:glue:Schema",
    "aws:eks:Cluster",
    "aws:eks:NodeGroup",
    "aws:elasticache:ReplicationGroup",
    "aws:elasticache:SubnetGroup",
    "aws:iam:Role",
    "aws:iam:RolePolicy",
    "aws:iam:RolePolicyAttachment",
    "aws:lambda:Alias",
    "aws:lambda:Function",
    "aws:lambda:Permission",
    "aws:lb:Listener",
    "aws:lb:ListenerRule",
    "aws:lb:LoadBalancer",
    "aws:lb:TargetGroup",
    "aws:mq:Broker",
    "aws:msk:ServerlessCluster",
    "aws:rds:Instance",
    "aws:rds:SubnetGroup",
    "aws:secretsmanager:Secret",
    "aws:secretsmanager:SecretRotation",
    "aws:sqs:Queue",
    "aws:sqs:QueuePolicy",
    "aws:vpc:SecurityGroupEgressRule",
    "aws:vpc:SecurityGroupIngressRule",
    "aws:wafv2:WebAcl",
    "aws:wafv2:WebAclAssociation",
    "gcp:artifactregistry:Repository",
    "gcp:cloudrunv2:Service",
    "gcp:cloudrunv2:ServiceIamMember",
    "gcp:compute:GlobalAddress",
    "gcp:compute:Network",
    "gcp:compute:Subnetwork",
    "gcp:container:Cluster",
    "gcp:firestore:Database",
    "gcp:managedkafka:Cluster",
    "gcp:monitoring:AlertPolicy",
    "gcp:projects:IAMMember",
    "gcp:projects:Service",
    "gcp:pubsub:Subscription",
    "gcp:pubsub:Topic",
    "gcp:redis:Instance",
    "gcp:secretmanager:Secret",
    "gcp:secretmanager:SecretIamMember",
    "gcp:serviceaccount:Account",
    "gcp:servicenetworking:Connection",
    "gcp:sql:Database",
    "gcp:sql:DatabaseInstance",
    "gcp:sql:User",
    "gcp:vpcaccess:Connector",
];

/// The roots of the `${…}` interpolations in `text` (`${a-b.c["d"]}` → `a-b`); `$${` is a
/// literal. The bool says whether the interpolation is closed.
fn interpolations(text: &str) -> Vec<(String, bool)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(at) = text[i..].find("${").map(|p| p + i) {
        if at > 0 && bytes[at - 1] == b'$' {
            i = at + 2;
            continue;
        }
        let rest = &text[at + 2..];
        let end = rest.find('}');
        let body = end.map_or(rest, |e| &rest[..e]);
        let root: String = body
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        out.push((root, end.is_some()));
        i = at + 2;
    }
    out
}

/// Every string under `value`, with the `fn::` keys met on the way.
fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>, functions: &mut BTreeSet<String>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out, functions)),
        Value::Object(map) => {
            for (key, v) in map {
                if key.starts_with("fn::") {
                    functions.insert(key.clone());
                }
                strings(v, out, functions);
            }
        }
        _ => {}
    }
}

/// The keys at two spaces of indentation under the top-level `section:` of `text`.
fn section_keys(text: &str, section: &str) -> Vec<String> {
    let mut inside = false;
    let mut keys = Vec::new();
    for line in text.lines() {
        if !line.starts_with(' ') && !line.starts_with('#') && !line.is_empty() {
            inside = line == format!("{section}:");
            continue;
        }
        let key = line
            .strip_prefix("  ")
            .filter(|l| !l.starts_with(' ') && !l.starts_with('#'))
            .and_then(|l| l.strip_suffix(':'));
        if let Some(key) = key.filter(|_| inside) {
            keys.push(key.to_owned());
        }
    }
    keys
}

/// Checks one program: its shape, resource types, and that every interpolation, provider and
/// dependency resolves. Returns the config keys it declares, with whether each has a default.
fn check_program(path: &str, text: &str) -> BTreeMap<String, bool> {
    let program: Value =
        serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}\n{text}"));
    let top: BTreeSet<&str> = program
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let allowed: BTreeSet<&str> = [
        "name",
        "runtime",
        "description",
        "config",
        "variables",
        "resources",
        "outputs",
    ]
    .into();
    assert!(top.is_subset(&allowed), "{path}: sections {top:?}");
    assert_eq!(program["runtime"], "yaml", "{path}");
    assert!(
        program["name"].as_str().is_some_and(|n| !n.is_empty()),
        "{path}"
    );

    let resources = program["resources"].as_object().expect("resources");
    let keys = section_keys(text, "resources");
    let unique: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(
        unique.len(),
        keys.len(),
        "{path}: a resource is declared twice: {keys:?}"
    );
    assert_eq!(keys.len(), resources.len(), "{path}");

    let config: BTreeMap<String, bool> = program["config"]
        .as_object()
        .map(|c| {
            c.iter()
                .map(|(k, v)| (k.clone(), v.get("default").is_some()))
                .collect()
        })
        .unwrap_or_default();
    for (key, declaration) in program["config"].as_object().into_iter().flatten() {
        assert!(
            ["string", "boolean", "integer"].contains(&declaration["type"].as_str().unwrap_or("")),
            "{path}: config {key} has no type"
        );
        let mut texts = Vec::new();
        strings(declaration, &mut texts, &mut BTreeSet::new());
        assert!(
            texts.iter().all(|t| interpolations(t).is_empty()),
            "{path}: config {key} holds an interpolation"
        );
    }
    let variables: BTreeSet<&String> = program["variables"]
        .as_object()
        .map(|v| v.keys().collect())
        .unwrap_or_default();
    let mut declared: BTreeSet<&str> = resources.keys().map(String::as_str).collect();
    declared.extend(variables.iter().map(|v| v.as_str()));
    declared.extend(config.keys().map(String::as_str));
    declared.insert("pulumi");

    for (name, resource) in resources {
        let kind = resource["type"].as_str().unwrap_or_default();
        assert!(
            TYPES.contains(&kind),
            "{path}: {name} has the unknown type {kind:?}"
        );
        let props: BTreeSet<&str> = resource
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert!(
            props.is_subset(&["type", "properties", "options"].into()),
            "{path}: {name} has {props:?}"
        );
        if !kind.starts_with("pulumi:") {
            let provider = &resource["options"]["provider"];
            let expected = format!("${{{}}}", kind.split(':').next().unwrap());
            assert_eq!(
                provider.as_str(),
                Some(expected.as_str()),
                "{path}: {name}'s provider"
            );
        }
    }
    let mut texts = Vec::new();
    let mut functions = BTreeSet::new();
    for section in ["variables", "resources", "outputs"] {
        strings(&program[section], &mut texts, &mut functions);
    }
    assert!(
        functions.is_subset(
            &["fn::invoke", "fn::toJSON", "fn::readFile"]
                .map(str::to_owned)
                .into()
        ),
        "{path}: {functions:?}"
    );
    for text in texts {
        for (root, closed) in interpolations(text) {
            assert!(closed, "{path}: unclosed interpolation in {text:?}");
            assert!(
                declared.contains(root.as_str()),
                "{path}: `{text}` refers to `{root}`, declared nowhere"
            );
        }
    }
    assert!(
        program["outputs"]
            .as_object()
            .is_some_and(|o| !o.is_empty()),
        "{path}: no outputs"
    );
    config
}

/// Checks every program of `files` and its stack files: each stack key is a declared config
/// key of its project (or the default provider switch), and every key without a default is set
/// in the stack file or named in its `pulumi config set` instructions.
fn check_tree(name: &str, files: &BTreeMap<String, String>) {
    for (path, text) in files.iter().filter(|(p, _)| p.ends_with("/Pulumi.yaml")) {
        let config = check_program(path, text);
        let dir = path.trim_end_matches("Pulumi.yaml");
        // Files the program reads are generated beside it.
        for line in text.lines() {
            if let Some(file) = line.trim().strip_prefix("fn::readFile: ./") {
                let read = format!("{dir}{file}");
                assert!(
                    files.contains_key(&read),
                    "{path} reads {read}, not generated"
                );
            }
        }
        let program: Value = serde_saphyr::from_str(text).unwrap();
        let project = program["name"].as_str().unwrap();
        let stacks: Vec<(&String, &String)> = files
            .iter()
            .filter(|(p, _)| {
                p.starts_with(dir) && !p.ends_with("/Pulumi.yaml") && !p[dir.len()..].contains('/')
            })
            .collect();
        if config.values().any(|has_default| !has_default) || dir.ends_with("/aws/") {
            assert!(!stacks.is_empty(), "{name}: {path} has no stacks");
        }
        for (stack_path, stack_text) in stacks {
            let stack: Value = serde_saphyr::from_str(stack_text)
                .unwrap_or_else(|e| panic!("{stack_path} is not YAML: {e}\n{stack_text}"));
            let set: BTreeSet<String> = stack["config"]
                .as_object()
                .expect("config")
                .keys()
                .filter(|k| *k != "pulumi:disable-default-providers")
                .map(|k| {
                    k.strip_prefix(&format!("{project}:"))
                        .unwrap_or_else(|| panic!("{stack_path}: {k} is not of {project}"))
                        .to_owned()
                })
                .collect();
            for key in &set {
                assert!(
                    config.contains_key(key),
                    "{stack_path}: {key} is not declared"
                );
            }
            for (key, has_default) in &config {
                let instructed = stack_text.lines().any(|l| {
                    l.starts_with("#   pulumi config set") && l.split_whitespace().any(|w| w == key)
                });
                assert!(
                    *has_default || set.contains(key) || instructed,
                    "{stack_path}: {key} is required, neither set nor explained"
                );
            }
        }
    }
}

/// The small files of the snapshots, beside the cases of the parent module.
fn pulumi_cases() -> Vec<(&'static str, String)> {
    let base = "[architecture]\nname = \"shop\"\n\n[[services]]\nname = \"orders\"\ntype = \"stateless\"\nprotocols = [\"rest\", \"grpc\"]\n\n[services.database]\ntype = \"postgres\"\n\n[services.domain]\nevents = [\"OrderPlaced\"]\n\n[[services]]\nname = \"mailer\"\ntype = \"consumer\"\n\n[services.consumer]\nevents = [\"OrderPlaced\"]\nmax_retries = 4\n";
    let sections = [
        (
            "pulumi_aws_lambda_sqs",
            "[settings]\nevent_bus = \"sqs\"\n\n[cloud]\nregions = [\"us-east-1\", \"eu-west-1\"]\n\n[cloud.aws]\naccount_id = \"${AWS_ACCOUNT_ID}\"\nruntime = \"lambda\"\n",
        ),
        (
            "pulumi_aws_fargate_kafka_glue",
            "[settings]\nevent_bus = \"kafka\"\n\n[settings.events]\nschema_registry = \"glue\"\n\n[cloud.aws]\nruntime = \"fargate\"\n",
        ),
        (
            "pulumi_gcp_cloud_run_pubsub",
            "[settings]\nevent_bus = \"pubsub\"\n\n[cloud.gcp]\nproject_id = \"shop-prod\"\nruntime = \"cloud-run\"\n",
        ),
        (
            "pulumi_multi_cloud",
            "[settings]\nevent_bus = \"sqs\"\n\n[cloud]\nregions = [\"eu-central-1\"]\n\n[cloud.aws]\nruntime = \"eks\"\n\n[cloud.gcp]\nproject_id = \"${GCP_PROJECT_ID}\"\nruntime = \"gke\"\n",
        ),
    ];
    sections
        .into_iter()
        .map(|(name, sections)| {
            let toml = base.replacen(
                "\n\n[[services]]",
                &format!("\n\n{sections}\n[[services]]"),
                1,
            );
            (name, toml)
        })
        .collect()
}

#[test]
fn every_program_and_stack_parses_and_every_reference_resolves() {
    let mut checked = 0;
    for (name, arch) in cases().into_iter().chain(pulumi_cases()) {
        let files = pulumi(&arch);
        check_tree(name, &files);
        checked += files.keys().filter(|p| p.ends_with("/Pulumi.yaml")).count();
    }
    assert!(checked >= 12, "{checked} programs");
}

#[test]
fn the_checker_rejects_dangling_references() {
    assert_eq!(
        interpolations("a ${b-c.d[\"e\"]} $${f} ${g}"),
        vec![("b-c".to_owned(), true), ("g".to_owned(), true)]
    );
    let program = "name: p\nruntime: yaml\nresources:\n  q:\n    type: aws:sqs:Queue\n    properties:\n      name: ${missing.name}\n    options:\n      provider: ${aws}\n  aws:\n    type: pulumi:providers:aws\noutputs:\n  x: ${q.url}\n";
    let result = std::panic::catch_unwind(|| check_program("p/Pulumi.yaml", program));
    assert!(result.is_err());
}

#[test]
fn only_the_clouds_of_the_file_get_programs() {
    let has = |files: &BTreeMap<String, String>, dir: &str| {
        files
            .keys()
            .any(|p| p.starts_with(&format!("infrastructure/pulumi/{dir}/")))
    };
    let gcp_only = pulumi(SENSORS);
    assert!(has(&gcp_only, "gcp"));
    assert!(!has(&gcp_only, "aws") && !has(&gcp_only, "multi-cloud"));
    let cases: BTreeMap<&str, String> = cases().into_iter().chain(pulumi_cases()).collect();
    let fly = pulumi(&cases["fly_and_shuttle_blue_green"]);
    assert!(fly.is_empty(), "{:?}", fly.keys());
    let aws = pulumi(&cases["pulumi_aws_fargate_kafka_glue"]);
    assert!(has(&aws, "aws") && !has(&aws, "gcp") && !has(&aws, "multi-cloud"));

    let both = pulumi(&cases["pulumi_multi_cloud"]);
    let multi: Value =
        serde_saphyr::from_str(&both["infrastructure/pulumi/multi-cloud/Pulumi.yaml"]).unwrap();
    let references: BTreeSet<&str> = multi["resources"]
        .as_object()
        .unwrap()
        .values()
        .map(|r| r["properties"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        references,
        [
            "${pulumi.organization}/shop-aws/${pulumi.stack}",
            "${pulumi.organization}/shop-gcp/${pulumi.stack}"
        ]
        .into()
    );
    // Every output the multi-cloud program reads is an output of the per-cloud program.
    for (cloud, outputs) in multi["outputs"].as_object().unwrap() {
        let program: Value =
            serde_saphyr::from_str(&both[&format!("infrastructure/pulumi/{cloud}/Pulumi.yaml")])
                .unwrap();
        for key in outputs.as_object().unwrap().keys() {
            assert!(
                program["outputs"].get(key).is_some(),
                "{cloud} exports no {key}"
            );
        }
    }
}

#[test]
fn stacks_follow_the_overlays_and_fan_out_over_regions() {
    let files = pulumi(&reference());
    for cloud in ["aws", "gcp"] {
        let stacks: BTreeSet<&str> = files
            .keys()
            .filter_map(|p| p.strip_prefix(&format!("infrastructure/pulumi/{cloud}/Pulumi.")))
            .filter_map(|p| p.strip_suffix(".yaml"))
            .collect();
        assert_eq!(
            stacks,
            ["dev", "staging", "production", "production-eu-west-1"].into(),
            "{cloud}"
        );
    }
    let stack: Value = serde_saphyr::from_str(
        &files["infrastructure/pulumi/gcp/Pulumi.production-eu-west-1.yaml"],
    )
    .unwrap();
    assert_eq!(
        stack["config"]["e-commerce-platform-gcp:region"],
        "europe-west1"
    );
    assert_eq!(
        stack["config"]["e-commerce-platform-gcp:environment"],
        "production"
    );
    // A `${VAR}` of another cloud's section is not a key of this cloud's program.
    let aws_text = &files["infrastructure/pulumi/aws/Pulumi.yaml"];
    assert!(aws_text.contains("  aws_account_id:\n") && !aws_text.contains("gcp_project_id"));
    let gcp_text = &files["infrastructure/pulumi/gcp/Pulumi.yaml"];
    assert!(gcp_text.contains("  gcp_project_id:\n") && !gcp_text.contains("aws_account_id"));
    let dev: Value =
        serde_saphyr::from_str(&files["infrastructure/pulumi/aws/Pulumi.dev.yaml"]).unwrap();
    assert_eq!(dev["config"]["e-commerce-platform-aws:region"], "us-east-1");
    assert_eq!(dev["config"]["e-commerce-platform-aws:image_tag"], "dev");
    assert_eq!(dev["config"]["e-commerce-platform-aws:multi_az"], false);

    // One Lambda function behind its own HTTP API per service of the reference file.
    let program: Value =
        serde_saphyr::from_str(&files["infrastructure/pulumi/aws/Pulumi.yaml"]).unwrap();
    let resources = program["resources"].as_object().unwrap();
    for name in REFERENCE_SERVICES {
        assert_eq!(
            resources[&format!("{name}-function")]["type"],
            "aws:lambda:Function"
        );
        assert_eq!(
            resources[&format!("{name}-api")]["type"],
            "aws:apigatewayv2:Api"
        );
        assert_eq!(
            resources[&format!("{name}-secret")]["type"],
            "aws:secretsmanager:Secret"
        );
        assert_eq!(
            resources[&format!("{name}-logs")]["type"],
            "aws:cloudwatch:LogGroup"
        );
    }
}

#[test]
fn consumers_get_their_dead_letter_queues_and_runtimes_their_resources() {
    let cases: BTreeMap<&str, String> = pulumi_cases().into_iter().collect();
    let program = |name: &str, cloud: &str| -> Value {
        let files = pulumi(&cases[name]);
        serde_saphyr::from_str(&files[&format!("infrastructure/pulumi/{cloud}/Pulumi.yaml")])
            .unwrap()
    };
    // SQS: the consumer's queue moves a message to its DLQ after max_retries deliveries.
    let lambda = program("pulumi_aws_lambda_sqs", "aws");
    let queue = &lambda["resources"]["mailer-queue"]["properties"]["redrivePolicy"]["fn::toJSON"];
    assert_eq!(queue["maxReceiveCount"], 4);
    assert_eq!(queue["deadLetterTargetArn"], "${mailer-dlq.arn}");
    assert!(lambda["resources"].get("orders-queue").is_none());
    let env = &lambda["resources"]["mailer-function"]["properties"]["environment"]["variables"];
    assert_eq!(env["EVENT_QUEUE_URL"], "${mailer-queue.url}");
    assert_eq!(lambda["resources"]["orders-db"]["type"], "aws:rds:Instance");
    assert_eq!(
        lambda["resources"]["aws"]["properties"]["allowedAccountIds"][0],
        "${aws_account_id}"
    );

    // Fargate: a task, a service and a host rule per service; MSK for Kafka.
    let fargate = program("pulumi_aws_fargate_kafka_glue", "aws");
    for name in ["orders", "mailer"] {
        assert_eq!(
            fargate["resources"][&format!("{name}-service")]["type"],
            "aws:ecs:Service"
        );
        assert_eq!(
            fargate["resources"][&format!("{name}-route")]["type"],
            "aws:lb:ListenerRule"
        );
    }
    assert_eq!(
        fargate["resources"]["msk-cluster"]["type"],
        "aws:msk:ServerlessCluster"
    );
    // The WAF on the load balancer; the Glue schemas read from the files beside the program.
    let waf = &fargate["resources"]["web-acl-load-balancer"]["properties"];
    assert_eq!(waf["resourceArn"], "${load-balancer.arn}");
    let schema = &fargate["resources"]["orderplaced-schema"]["properties"];
    assert_eq!(
        schema["schemaDefinition"]["fn::readFile"],
        "./schemas/OrderPlaced.json"
    );

    // Pub/Sub: a subscription dead-lettering after max(max_retries, 5) deliveries.
    let gcp = program("pulumi_gcp_cloud_run_pubsub", "gcp");
    let subscription = &gcp["resources"]["mailer-orderplaced"]["properties"];
    assert_eq!(subscription["deadLetterPolicy"]["maxDeliveryAttempts"], 5);
    assert_eq!(
        subscription["deadLetterPolicy"]["deadLetterTopic"],
        "${mailer-dlq.id}"
    );
    assert_eq!(
        gcp["resources"]["orders-service"]["type"],
        "gcp:cloudrunv2:Service"
    );
    assert_eq!(
        gcp["resources"]["orders-sql"]["type"],
        "gcp:sql:DatabaseInstance"
    );
    assert_eq!(gcp["config"]["gcp_project_id"]["default"], "shop-prod");
}

#[test]
fn deferred_values_are_config_keys_and_never_written() {
    let arch = SENSORS.replace(
        "[[services]]\nname = \"ingest\"",
        "[security.authentication]\nprovider = \"custom\"\njwt_issuer = \"https://${AUTH_TOKEN_DOMAIN}/\"\n\n[[services]]\nname = \"ingest\"",
    );
    let files = pulumi(&arch);
    let program: Value =
        serde_saphyr::from_str(&files["infrastructure/pulumi/gcp/Pulumi.yaml"]).unwrap();
    assert_eq!(program["config"]["auth_token_domain"]["secret"], true);
    assert_eq!(program["config"]["gcp_project_id"]["type"], "string");
    assert!(program["config"]["gcp_project_id"].get("default").is_none());
    assert_eq!(
        program["resources"]["gcp"]["properties"]["project"],
        "${gcp_project_id}"
    );
    let text = &files["infrastructure/pulumi/gcp/Pulumi.yaml"];
    assert!(text.contains("value: \"${auth_token_domain}\""), "{text}");

    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("architecture.toml"), &arch).expect("write");
    cargo_allframe_with_env(
        dir.path(),
        &["ignite", "--out", "ws"],
        &[
            ("AUTH_TOKEN_DOMAIN", "auth-secret-5d1e"),
            ("GCP_PROJECT_ID", "project-secret-08b4"),
        ],
    )
    .ok();
    let written = common::snapshot(&dir.path().join("ws/infrastructure/pulumi"));
    assert!(!written.is_empty());
    for (path, bytes) in written {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("secret-5d1e") && !text.contains("secret-08b4"),
            "{} holds a value of the environment",
            path.display()
        );
    }
}

#[test]
fn reignite_keeps_an_edited_stack_file_and_updates_the_program() {
    // A stateless service (ignite generates its crate, so it is deployed) beside the sensors.
    let arch = format!(
        "{}\n[[services]]\nname = \"dashboard\"\ntype = \"stateless\"\n\n[services.ports]\ninbound = [\"rest:8300\"]\n",
        super::sensors_on_pubsub()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("architecture.toml");
    std::fs::write(&config, &arch).expect("write");
    cargo_allframe(dir.path(), &["ignite", "--out", "ws"]).ok();
    let pulumi = dir.path().join("ws/infrastructure/pulumi/gcp");
    let stack = pulumi.join("Pulumi.dev.yaml");
    let edited = format!("{}  sensors-gcp:db_tier: db-g1-small\n", read(&stack));
    std::fs::write(&stack, &edited).expect("edit");

    std::fs::write(&config, arch.replace("rest:8300", "rest:8310")).expect("write");
    let run = cargo_allframe(dir.path(), &["ignite", "--out", "ws"]).ok();
    assert_eq!(read(&stack), edited);
    let files = listed(&run.stdout);
    assert!(
        files["infrastructure/pulumi/gcp/Pulumi.dev.yaml"].starts_with("kept"),
        "{}",
        run.stdout
    );
    assert_eq!(
        files["infrastructure/pulumi/gcp/Pulumi.yaml"], "updated",
        "{}",
        run.stdout
    );
    assert!(read(&pulumi.join("Pulumi.yaml")).contains("containerPort: 8310"));
}

#[test]
fn snapshots_of_the_pulumi_programs() {
    // Beside the other snapshots of the infrastructure, in tests/snapshots.
    insta::with_settings!({ snapshot_path => "../snapshots" }, {
        insta::assert_snapshot!("pulumi_reference", tree(&pulumi(&reference())));
        for (name, arch) in pulumi_cases() {
            insta::assert_snapshot!(name, tree(&pulumi(&arch)));
        }
    });
}
