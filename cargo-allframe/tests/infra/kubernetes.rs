//! The Kubernetes manifests: canary and blue-green deployments as Argo Rollouts with probes and
//! the promotion criteria, rolling ones as Deployments, and every pod stopping gracefully.

use std::collections::BTreeMap;

use serde_json::Value;

use super::*;

/// Every manifest under `infrastructure/k8s/base`, by path.
pub(super) fn manifests(files: &BTreeMap<String, String>) -> BTreeMap<String, Value> {
    files
        .keys()
        .filter(|p| p.starts_with("infrastructure/k8s/") && p.ends_with(".yaml"))
        .map(|p| (p.clone(), yaml(files, p)))
        .collect()
}

#[test]
fn canary_manifests_are_argo_rollouts_with_probes_and_the_promotion_criteria() {
    let files = generate(&reference());
    let all = manifests(&files);
    let kustomization = &all["infrastructure/k8s/base/kustomization.yaml"];
    let resources: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("infrastructure/k8s/base/{}", r.as_str().unwrap()))
        .collect();
    for resource in &resources {
        assert!(
            all.contains_key(resource),
            "{resource} is listed but not generated"
        );
    }
    for name in REFERENCE_SERVICES {
        let rollout = &all[&format!("infrastructure/k8s/base/{name}/rollout.yaml")];
        assert_eq!(rollout["kind"], "Rollout");
        let canary = &rollout["spec"]["strategy"]["canary"];
        assert_eq!(canary["steps"][0]["setWeight"], 10);
        assert_eq!(canary["steps"][2]["pause"]["duration"], "15m");
        assert_eq!(canary["stableService"].as_str(), Some(*name));
        let canary_service = canary["canaryService"].as_str().unwrap();
        assert!(
            resources.contains(&format!(
                "infrastructure/k8s/base/{name}/service-canary.yaml"
            )),
            "{canary_service}"
        );
        let container = &rollout["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            container["livenessProbe"]["httpGet"]["path"],
            "/health/live"
        );
        assert_eq!(
            container["readinessProbe"]["httpGet"]["path"],
            "/health/ready"
        );
        assert_stops_gracefully(&rollout["spec"]["template"]["spec"]);
        assert!(container["resources"]["requests"]["cpu"].is_string());
        assert!(container["resources"]["limits"]["memory"].is_string());
        let hpa = &all[&format!("infrastructure/k8s/base/{name}/hpa.yaml")];
        assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Rollout");
        assert_eq!(hpa["spec"]["scaleTargetRef"]["name"].as_str(), Some(*name));
        let pdb = &all[&format!("infrastructure/k8s/base/{name}/pdb.yaml")];
        assert_eq!(
            pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"].as_str(),
            Some(*name)
        );
    }
    let users = &all["infrastructure/k8s/base/user-service/rollout.yaml"];
    let ports = &users["spec"]["template"]["spec"]["containers"][0]["ports"];
    assert_eq!(ports[0]["containerPort"], 8080);
    assert_eq!(ports[1]["containerPort"], 9090);

    // The analysis measures the promotion criteria of [deployment].
    let analysis = &all["infrastructure/k8s/base/analysis-template.yaml"];
    let metrics = analysis["spec"]["metrics"].as_array().unwrap();
    assert!(
        metrics[0]["successCondition"]
            .as_str()
            .unwrap()
            .ends_with("<= 0.01")
    );
    assert!(
        metrics[1]["successCondition"]
            .as_str()
            .unwrap()
            .ends_with("<= 0.5")
    );

    // Only the services that call user-service may reach it; the BFF also takes the ingress.
    let policy = &all["infrastructure/k8s/base/user-service/networkpolicy.yaml"];
    let callers: Vec<&str> = policy["spec"]["ingress"][0]["from"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            f["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(callers, ["web-bff"]);
    let bff = &all["infrastructure/k8s/base/web-bff/networkpolicy.yaml"];
    assert_eq!(
        bff["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "ingress-nginx"
    );

    for (overlay, min, max) in [("dev", 1, 2), ("staging", 2, 4), ("production", 3, 12)] {
        let k = &all[&format!("infrastructure/k8s/overlays/{overlay}/kustomization.yaml")];
        assert_eq!(k["namespace"], format!("e-commerce-platform-{overlay}"));
        let patch = k["patches"][0]["patch"].as_str().unwrap();
        let ops: Value = serde_saphyr::from_str(patch).expect("a JSON patch in YAML");
        assert_eq!(ops[0]["value"], min);
        assert_eq!(ops[1]["value"], max);
        assert_eq!(k["patches"][1]["target"]["kind"], "Rollout");
    }
}

/// A pod spec whose container keeps serving for a propagation delay after SIGTERM (set by
/// environment, read by the runtime), then drains, all within the grace period: the grace
/// period is delay + drain + a margin, and there is no second mechanism (a preStop sleep).
fn assert_stops_gracefully(pod: &Value) {
    let container = &pod["containers"][0];
    let env = |name: &str| -> u64 {
        container["env"]
            .as_array()
            .expect("env")
            .iter()
            .find(|var| var["name"] == name)
            .and_then(|var| var["value"].as_str())
            .unwrap_or_else(|| panic!("{name} in {container}"))
            .parse()
            .unwrap_or_else(|_| panic!("{name} is a number of seconds"))
    };
    let delay = env("ALLFRAME_SHUTDOWN_DELAY_SECS");
    let drain = env("ALLFRAME_SHUTDOWN_TIMEOUT_SECS");
    assert_eq!((delay, drain), (5, 30));
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("a grace period");
    assert!(
        grace > delay + drain + 10,
        "the grace period ({grace} s) covers the delay, the drain and what follows"
    );
    assert!(container["lifecycle"].is_null(), "no preStop: {container}");
}

#[test]
fn blue_green_and_rolling_strategies_shape_the_workloads() {
    let files = generate(SENSORS);
    let all = manifests(&files);
    let rollout = &all["infrastructure/k8s/base/alerts/rollout.yaml"];
    let blue_green = &rollout["spec"]["strategy"]["blueGreen"];
    assert_eq!(blue_green["activeService"], "alerts");
    assert_eq!(blue_green["previewService"], "alerts-preview");
    assert_eq!(
        all["infrastructure/k8s/base/alerts/service-preview.yaml"]["metadata"]["name"],
        "alerts-preview"
    );

    let rolling = generate(&SENSORS.replace("blue-green", "rolling"));
    let all = manifests(&rolling);
    assert!(
        !all.keys()
            .any(|p| p.contains("rollout") || p.contains("analysis"))
    );
    let deployment = &all["infrastructure/k8s/base/alerts/deployment.yaml"];
    assert_eq!(deployment["kind"], "Deployment");
    assert_stops_gracefully(&deployment["spec"]["template"]["spec"]);
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(
        all["infrastructure/k8s/base/alerts/hpa.yaml"]["spec"]["scaleTargetRef"]["kind"],
        "Deployment"
    );
    let recreate = generate(&SENSORS.replace("blue-green", "recreate"));
    let deployment = yaml(&recreate, "infrastructure/k8s/base/alerts/deployment.yaml");
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
}
