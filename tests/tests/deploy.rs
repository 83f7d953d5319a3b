//! The deployment (deploy/): every Kubernetes overlay rendered with `kubectl kustomize` and
//! checked for the invariants operators rely on (the store on loopback only, the Service on
//! Discreet's port, a NetworkPolicy, non-root, read-only root, no privilege escalation,
//! probes and resources, configuration, policy, keys and the audit key mounted, the metrics
//! port exposed to the monitoring namespace only and annotated for Prometheus, access spans
//! sent to a collector), the configuration in each rendered ConfigMap accepted by
//! `discreet serve --check-config` with the Deployment's own arguments, the shipped copies
//! identical to config/ and deploy/otel-collector/, the dev overlay's collector (which keeps
//! every access span and writes the file `discreet audit` reads) and Jaeger, the example
//! caller's token audience, and the Dockerfile's structure.
//!
//! kubectl is required: without it these tests fail (CI has it), they never pass silently.
//! The gateway binary is `DISCREET_BIN` if set, else built with `cargo build -p discreet-cli`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use serde_json::Value;

const OVERLAYS: [&str; 2] = ["dev", "production"];
const GATEWAY_PORT: i64 = 50051;
const METRICS_PORT: i64 = 9464;
const CONFIG_DIR: &str = "/etc/discreet";
/// Where a pod's service-account token and the cluster CA are mounted.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The Deployment (and its Service) of the store with the gateway beside it.
const STORE: &str = "profile-store";
/// The namespace the metrics port is open to.
const MONITORING_NAMESPACE: &str = "monitoring";
/// The OpenTelemetry Collector configuration, and the dev overlay's copy of it.
const COLLECTOR_CONFIG: &str = "deploy/otel-collector/collector.yaml";
const DEV_COLLECTOR_CONFIG: &str = "deploy/kubernetes/overlays/dev/collector.yaml";
/// Where the collector's `file` exporter writes the spans `discreet audit` reads.
const AUDIT_FILES_DIR: &str = "/var/lib/discreet-audit";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `kubectl kustomize deploy/kubernetes/<dir>`, parsed into one value per document.
fn render(dir: &str) -> Vec<Value> {
    let path = root().join("deploy/kubernetes").join(dir);
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "kubectl is required to render the manifests ({e}); install kubectl \
                 (CI has it): these tests fail rather than pass without it"
            )
        });
    assert!(
        output.status.success(),
        "kubectl kustomize {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("utf-8 manifests");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("rendered {dir} is not YAML: {e}"));
    let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
    assert!(!docs.is_empty(), "{dir} rendered nothing");
    docs
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], k: &str, overlay: &str) -> &'a Value {
    let found = kind(docs, k);
    assert_eq!(found.len(), 1, "{overlay}: expected exactly one {k}");
    found[0]
}

/// The `k` named `name`.
fn named<'a>(docs: &'a [Value], k: &str, name: &str, overlay: &str) -> &'a Value {
    kind(docs, k)
        .into_iter()
        .find(|d| d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{overlay}: no {k} {name}"))
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn strings(v: &Value) -> Vec<&str> {
    array(v).iter().filter_map(Value::as_str).collect()
}

/// The value after `flag` in an argument list.
fn flag<'a>(args: &[&'a str], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| *a == flag)
        .and_then(|i| args.get(i + 1).copied())
}

fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    array(&pod["containers"])
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn volume<'a>(pod: &'a Value, name: &Value) -> &'a Value {
    array(&pod["volumes"])
        .iter()
        .find(|v| v["name"] == *name)
        .unwrap_or_else(|| panic!("no volume {name}"))
}

/// The container's port named `name`, or numbered `name`.
fn container_port(c: &Value, name: &Value) -> i64 {
    if let Some(n) = name.as_i64() {
        return n;
    }
    array(&c["ports"])
        .iter()
        .find(|p| p["name"] == *name)
        .and_then(|p| p["containerPort"].as_i64())
        .unwrap_or_else(|| panic!("{}: no port {name}", c["name"]))
}

/// An argument as the kubelet passes it: `$(NAME)` replaced by the container's `env` value.
/// A reference to a variable the container does not define would reach the program
/// literally, so it fails here.
fn expand(arg: &str, c: &Value) -> String {
    let mut out = String::new();
    let mut rest = arg;
    while let Some(at) = rest.find("$(") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 2..];
        let end = tail.find(')').expect("closed $(...)");
        let name = &tail[..end];
        let value = array(&c["env"])
            .iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
            .unwrap_or_else(|| panic!("{}: $({name}) is not in env", c["name"]));
        out.push_str(value);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

/// `host` and `port` of an `http://host:port` address.
fn host_port(address: &str) -> (&str, i64) {
    let rest = address
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{address}: not http://host:port"));
    let (host, port) = rest
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{address}: no port"));
    (host, port.parse().expect("a port number"))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

/// `labels` select everything `selector` (matchLabels or a plain map) asks for.
fn selects(selector: &Value, labels: &Value) -> bool {
    let wanted = selector
        .get("matchLabels")
        .unwrap_or(selector)
        .as_object()
        .expect("selector labels");
    !wanted.is_empty() && wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn configmap_data<'a>(docs: &'a [Value], name: &str) -> &'a serde_json::Map<String, Value> {
    kind(docs, "ConfigMap")
        .into_iter()
        .find(|c| c["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("ConfigMap {name} is mounted but not rendered"))["data"]
        .as_object()
        .expect("ConfigMap data")
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("YAML")
}

#[test]
fn every_overlay_holds_the_pod_invariants() {
    for overlay in OVERLAYS {
        let docs = render(&format!("overlays/{overlay}"));
        let deployment = named(&docs, "Deployment", STORE, overlay);
        let template = &deployment["spec"]["template"];
        let pod_labels = &template["metadata"]["labels"];
        let pod = &template["spec"];
        assert!(
            selects(&deployment["spec"]["selector"], pod_labels),
            "{overlay}: the Deployment selects its pods"
        );

        // The store: loopback only, no port declared for the Service or anyone to use.
        let store = container(pod, "store");
        let store_args = strings(&store["args"]);
        let store_listen = flag(&store_args, "--listen").expect("store --listen");
        assert!(
            store_listen.starts_with("127.0.0.1:"),
            "{overlay}: store listens on {store_listen}, not loopback"
        );
        assert!(
            array(&store["ports"]).is_empty(),
            "{overlay}: the store declares no container port"
        );

        // Discreet: listens for the Service, forwards to the store on loopback, serves
        // metrics for Prometheus and exports access spans to a collector outside the pod.
        let discreet = container(pod, "discreet");
        let args: Vec<String> = strings(&discreet["args"])
            .into_iter()
            .map(|a| expand(a, discreet))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(
            args.first(),
            Some(&"discreet"),
            "{overlay}: gateway command"
        );
        assert_eq!(args.get(1), Some(&"serve"), "{overlay}: gateway command");
        assert_eq!(
            flag(&args, "--listen"),
            Some(format!("0.0.0.0:{GATEWAY_PORT}").as_str()),
            "{overlay}: gateway --listen"
        );
        assert_eq!(
            flag(&args, "--upstream"),
            Some(format!("http://{store_listen}").as_str()),
            "{overlay}: the gateway forwards to the store's loopback address"
        );
        assert_eq!(
            flag(&args, "--config"),
            Some(format!("{CONFIG_DIR}/discreet.yaml").as_str()),
            "{overlay}: configuration path"
        );
        assert_eq!(
            flag(&args, "--metrics-listen"),
            Some(format!("0.0.0.0:{METRICS_PORT}").as_str()),
            "{overlay}: metrics for the scraper"
        );
        let audit_endpoint = flag(&args, "--audit-endpoint").expect("--audit-endpoint");
        let (collector_host, collector_port) = host_port(audit_endpoint);
        assert!(
            !is_loopback(collector_host) && collector_port == 4317,
            "{overlay}: access spans go to a collector's OTLP/gRPC port, not {audit_endpoint}"
        );
        let ports = array(&discreet["ports"]);
        assert_eq!(
            ports.len(),
            2,
            "{overlay}: the gateway declares its gRPC and metrics ports"
        );
        let port_named = |number: i64| {
            ports
                .iter()
                .find(|p| p["containerPort"] == number)
                .unwrap_or_else(|| panic!("{overlay}: the gateway declares port {number}"))["name"]
                .as_str()
                .expect("named port")
        };
        let port_name = port_named(GATEWAY_PORT);
        assert_eq!(port_named(METRICS_PORT), "metrics", "{overlay}");

        // Prometheus finds the metrics port from the pod's annotations.
        let annotations = &template["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true", "{overlay}");
        assert_eq!(
            annotations["prometheus.io/port"],
            METRICS_PORT.to_string().as_str(),
            "{overlay}: scrape port"
        );
        assert_eq!(annotations["prometheus.io/path"], "/metrics", "{overlay}");

        // Service -> Discreet's port, nothing else (not the metrics port either).
        let service = named(&docs, "Service", STORE, overlay);
        assert!(selects(&service["spec"]["selector"], pod_labels));
        let service_ports = array(&service["spec"]["ports"]);
        assert!(!service_ports.is_empty());
        for port in service_ports {
            let target = &port["targetPort"];
            assert!(
                target == port_name || *target == GATEWAY_PORT,
                "{overlay}: Service port targets {target}, not Discreet's port"
            );
        }

        // NetworkPolicy: ingress to the pod only on Discreet's port, and on the metrics port
        // only from the monitoring namespace.
        let netpols: Vec<&Value> = kind(&docs, "NetworkPolicy")
            .into_iter()
            .filter(|n| selects(&n["spec"]["podSelector"], pod_labels))
            .collect();
        assert_eq!(netpols.len(), 1, "{overlay}: one NetworkPolicy for the pod");
        let netpol = netpols[0];
        assert!(strings(&netpol["spec"]["policyTypes"]).contains(&"Ingress"));
        let rules = array(&netpol["spec"]["ingress"]);
        let (mut gateway_open, mut metrics_open) = (false, false);
        for rule in rules {
            let allowed = array(&rule["ports"]);
            assert!(
                !allowed.is_empty(),
                "{overlay}: an ingress rule without ports opens every port"
            );
            for p in allowed {
                if p["port"] == GATEWAY_PORT || p["port"] == port_name {
                    gateway_open = true;
                } else if p["port"] == METRICS_PORT || p["port"] == "metrics" {
                    let from = array(&rule["from"]);
                    assert!(
                        !from.is_empty()
                            && from.iter().all(|peer| {
                                peer["podSelector"].is_null()
                                    && peer["ipBlock"].is_null()
                                    && peer["namespaceSelector"]["matchLabels"]
                                        ["kubernetes.io/metadata.name"]
                                        == MONITORING_NAMESPACE
                            }),
                        "{overlay}: the metrics port is open to the {MONITORING_NAMESPACE} \
                         namespace only: {rule}"
                    );
                    metrics_open = true;
                } else {
                    panic!("{overlay}: NetworkPolicy opens {}", p["port"]);
                }
            }
        }
        assert!(gateway_open, "{overlay}: NetworkPolicy allows the gateway");
        assert!(metrics_open, "{overlay}: NetworkPolicy allows scraping");

        // Disruption budget and identity.
        let pdb = one(&docs, "PodDisruptionBudget", overlay);
        assert!(selects(&pdb["spec"]["selector"], pod_labels));
        let sa = named(
            &docs,
            "ServiceAccount",
            pod["serviceAccountName"]
                .as_str()
                .expect("serviceAccountName"),
            overlay,
        );
        assert_eq!(sa["automountServiceAccountToken"], false);

        // Every Deployment's containers, init containers included (the collector and
        // Jaeger in dev too): hardened, sized, probed, no API token.
        for d in kind(&docs, "Deployment") {
            let name = d["metadata"]["name"].as_str().unwrap_or("?");
            let spec = &d["spec"]["template"]["spec"];
            assert_hardened(&format!("{overlay}/{name}"), spec);
            assert_eq!(
                spec["automountServiceAccountToken"], false,
                "{overlay}/{name}: no API token mounted"
            );
        }
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
            assert_eq!(
                discreet[probe]["grpc"]["port"], GATEWAY_PORT,
                "{overlay}: the gateway's {probe} is a gRPC health probe"
            );
        }

        // Configuration and policy mounted where --config points, keys beside them.
        let mounts = array(&discreet["volumeMounts"]);
        let mount = |path: &str| {
            mounts
                .iter()
                .find(|m| m["mountPath"] == path)
                .unwrap_or_else(|| panic!("{overlay}: nothing mounted at {path}"))
        };
        let config_mount = mount(CONFIG_DIR);
        let keys_mount = mount(&format!("{CONFIG_DIR}/keys"));
        for m in [config_mount, keys_mount] {
            assert_eq!(
                m["readOnly"], true,
                "{overlay}: {} read-only",
                m["mountPath"]
            );
        }
        let config_volume = volume(pod, &config_mount["name"]);
        let mut files = serde_json::Map::new();
        let sources: Vec<&Value> = if config_volume["projected"].is_object() {
            array(&config_volume["projected"]["sources"])
                .iter()
                .map(|s| &s["configMap"])
                .collect()
        } else {
            vec![&config_volume["configMap"]]
        };
        for source in sources {
            let name = source["name"].as_str().expect("a ConfigMap source");
            assert!(
                source["items"].is_null(),
                "{overlay}: whole ConfigMaps mounted"
            );
            let rendered = kind(&docs, "ConfigMap")
                .into_iter()
                .any(|c| c["metadata"]["name"] == name);
            if !rendered {
                // The staged candidate policy is created when a change is staged; a
                // ConfigMap that is neither rendered nor optional would keep the pod from
                // starting.
                assert_eq!(
                    source["optional"], true,
                    "{overlay}: ConfigMap {name} is mounted but not rendered"
                );
                continue;
            }
            files.extend(configmap_data(&docs, name).clone());
        }
        assert!(
            files.contains_key("discreet.yaml"),
            "{overlay}: configuration"
        );
        assert!(files.contains_key("policy.yaml"), "{overlay}: policy");
        let keys_volume = volume(pod, &keys_mount["name"]);

        // What is shipped is what the tests use.
        assert_eq!(
            files["policy.yaml"].as_str(),
            Some(read("config/policy.yaml").as_str()),
            "{overlay}: the policy in the ConfigMap is config/policy.yaml"
        );
        let config_text = files["discreet.yaml"].as_str().expect("text");
        let config = yaml(config_text);
        assert_eq!(
            config_text,
            read(&format!(
                "deploy/kubernetes/overlays/{overlay}/discreet.yaml"
            )),
            "{overlay}: the ConfigMap is the overlay's discreet.yaml (see \
             shipped_copies_are_the_files_the_tests_use)"
        );

        // The keys the configuration names, the audit key among them, are in the keys
        // directory (paths are relative to discreet.yaml).
        for (section, key) in [("pseudonym", "secret_file"), ("audit", "key_file")] {
            let path = config[section][key].as_str().expect("a key file");
            assert!(
                path.starts_with("keys/") && !path[5..].contains('/'),
                "{overlay}: {section}.{key} ({path}) is in the mounted keys directory"
            );
        }
        match overlay {
            "dev" => {
                assert!(
                    config["identity"]["static"].is_string(),
                    "dev: static identity"
                );
                assert_eq!(deployment["spec"]["replicas"], 1, "dev: one replica");
                // A development keyring (audit.key included) generated into the keys
                // volume before the gateway starts; check_config below proves that
                // `discreet keys dev` writes every key the configuration reads.
                assert!(
                    keys_volume["emptyDir"]["medium"] == "Memory",
                    "dev: keys in memory"
                );
                let keygen = array(&pod["initContainers"])
                    .iter()
                    .find(|c| {
                        strings(&c["args"]).starts_with(&["discreet", "keys", "dev", "--dir"])
                    })
                    .expect("dev: an init container runs discreet keys dev");
                let dir = flag(&strings(&keygen["args"]), "--dir").expect("--dir");
                assert!(
                    array(&keygen["volumeMounts"])
                        .iter()
                        .any(|m| m["name"] == keys_mount["name"] && m["mountPath"] == dir),
                    "dev: discreet keys dev writes into the keys volume"
                );
            }
            _ => {
                assert_eq!(
                    config["identity"]["service_account"]["audience"], "discreet",
                    "{overlay}: service-account token identity, audience discreet"
                );
                assert!(
                    deployment["spec"]["replicas"].as_i64() >= Some(2),
                    "{overlay}: several replicas"
                );
                for source in ["keys", "revocation"] {
                    let url = config["consent"][source]["url"].as_str().unwrap_or("");
                    assert!(
                        url.starts_with("https://"),
                        "{overlay}: consent.{source} from an HTTPS URL"
                    );
                }
                let secrets: Vec<&str> = array(&keys_volume["projected"]["sources"])
                    .iter()
                    .filter_map(|s| s["secret"]["name"].as_str())
                    .collect();
                assert_eq!(
                    secrets,
                    ["discreet-keys", "discreet-audit-key"],
                    "{overlay}: keys and the audit key from Secrets created out of band"
                );
                assert!(
                    array(&keys_volume["projected"]["sources"])
                        .iter()
                        .all(|s| s["secret"]["items"].is_null() && s["secret"]["optional"] != true),
                    "{overlay}: whole Secrets, required"
                );
                // The API server's keys fetched by the gateway: its CA and a projected
                // token of the pod's service account, mounted into the gateway's
                // container only, where the configuration looks for them.
                let sa_keys = &config["identity"]["service_account"]["keys"];
                assert!(
                    sa_keys["url"]
                        .as_str()
                        .is_some_and(|u| u.starts_with("https://kubernetes.default.svc/")),
                    "{overlay}: caller keys from the API server"
                );
                let api_mount = mount(SERVICE_ACCOUNT_DIR);
                assert_eq!(api_mount["readOnly"], true);
                for (field, file) in [("ca_file", "ca.crt"), ("bearer_token_file", "token")] {
                    assert_eq!(
                        sa_keys[field].as_str(),
                        Some(format!("{SERVICE_ACCOUNT_DIR}/{file}").as_str()),
                        "{overlay}: identity.service_account.keys.{field}"
                    );
                }
                let api_sources = array(&volume(pod, &api_mount["name"])["projected"]["sources"]);
                assert!(
                    api_sources
                        .iter()
                        .any(|s| s["serviceAccountToken"]["path"] == "token"
                            && s["serviceAccountToken"]["expirationSeconds"].as_i64()
                                <= Some(3600)),
                    "{overlay}: a short-lived projected token"
                );
                assert!(
                    api_sources
                        .iter()
                        .any(|s| s["configMap"]["name"] == "kube-root-ca.crt"),
                    "{overlay}: the cluster CA"
                );
                for c in array(&pod["containers"])
                    .iter()
                    .chain(array(&pod["initContainers"]))
                {
                    if c["name"] != "discreet" {
                        assert!(
                            !array(&c["volumeMounts"])
                                .iter()
                                .any(|m| m["name"] == api_mount["name"]),
                            "{overlay}: the API token is mounted into {} too",
                            c["name"]
                        );
                    }
                }
            }
        }

        // The collector the gateway exports to: in dev, the overlay's own.
        if overlay == "dev" {
            let collector = named(&docs, "Service", collector_host, overlay);
            assert!(
                array(&collector["spec"]["ports"])
                    .iter()
                    .any(|p| p["port"] == collector_port),
                "dev: the collector Service listens on {collector_port}"
            );
        }

        // ... and the gateway accepts it, with the Deployment's own arguments.
        check_config(overlay, &files, &args);
    }
}

/// Every container of a pod, init containers included: non-root with a numeric uid, no
/// privilege escalation, read-only root, no capabilities, seccomp RuntimeDefault, CPU and
/// memory requests and limits; long-running containers have liveness and readiness probes.
fn assert_hardened(what: &str, pod: &Value) {
    let pod_sc = &pod["securityContext"];
    let all = array(&pod["containers"])
        .iter()
        .map(|c| (c, true))
        .chain(array(&pod["initContainers"]).iter().map(|c| (c, false)));
    for (c, long_running) in all {
        let name = c["name"].as_str().unwrap_or("?");
        let sc = &c["securityContext"];
        let non_root = sc["runAsNonRoot"] == true
            || (sc["runAsNonRoot"].is_null() && pod_sc["runAsNonRoot"] == true);
        assert!(non_root, "{what}/{name}: runAsNonRoot");
        let uid = sc["runAsUser"].as_i64().or(pod_sc["runAsUser"].as_i64());
        assert!(
            uid.is_some_and(|u| u > 0),
            "{what}/{name}: numeric non-root uid"
        );
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}/{name}");
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{what}/{name}");
        assert_ne!(sc["privileged"], true, "{what}/{name}");
        assert_eq!(
            strings(&sc["capabilities"]["drop"]),
            ["ALL"],
            "{what}/{name}: capabilities"
        );
        assert!(
            array(&sc["capabilities"]["add"]).is_empty(),
            "{what}/{name}: no capability added"
        );
        let seccomp = if sc["seccompProfile"].is_null() {
            &pod_sc["seccompProfile"]
        } else {
            &sc["seccompProfile"]
        };
        assert_eq!(seccomp["type"], "RuntimeDefault", "{what}/{name}");
        for bound in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(
                    !c["resources"][bound][resource].is_null(),
                    "{what}/{name}: resources.{bound}.{resource}"
                );
            }
        }
        if long_running {
            for probe in ["livenessProbe", "readinessProbe"] {
                assert!(c[probe].is_object(), "{what}/{name}: {probe}");
            }
        }
    }
}

#[test]
fn the_example_caller_presents_a_token_for_discreet() {
    let docs = render("examples/caller");
    let deployment = one(&docs, "Deployment", "caller");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_hardened("caller", pod);
    assert!(
        !kind(&docs, "NetworkPolicy").is_empty(),
        "caller: a NetworkPolicy"
    );

    // Its identity is namespace/serviceaccount, and the policy lets it call.
    let sa = one(&docs, "ServiceAccount", "caller");
    assert_eq!(pod["serviceAccountName"], sa["metadata"]["name"]);
    assert_eq!(pod["automountServiceAccountToken"], false);
    let caller = format!(
        "{}/{}",
        sa["metadata"]["namespace"].as_str().expect("namespace"),
        sa["metadata"]["name"].as_str().expect("name")
    );
    assert!(
        read("config/policy.yaml").contains(&caller),
        "the example caller {caller} is named in config/policy.yaml"
    );

    // A projected token whose audience is the one the shipped configuration requires.
    let config = yaml(&read("config/discreet.yaml"));
    let audience = &config["identity"]["service_account"]["audience"];
    let tokens: Vec<&Value> = array(&pod["volumes"])
        .iter()
        .flat_map(|v| array(&v["projected"]["sources"]))
        .map(|s| &s["serviceAccountToken"])
        .filter(|t| t.is_object())
        .collect();
    assert_eq!(
        tokens.len(),
        1,
        "caller: one projected service-account token"
    );
    assert_eq!(&tokens[0]["audience"], audience, "caller: token audience");

    // It calls the production Service, on Discreet's port.
    let production = render("overlays/production");
    let service = named(&production, "Service", STORE, "production");
    let address = format!(
        "http://{}.{}.svc.cluster.local:{GATEWAY_PORT}",
        service["metadata"]["name"].as_str().expect("name"),
        service["metadata"]["namespace"]
            .as_str()
            .expect("namespace"),
    );
    let env = &container(pod, "recommender")["env"];
    assert!(
        array(env).iter().any(|e| e["value"] == address.as_str()),
        "caller: calls {address}"
    );
}

/// Writes the ConfigMap's files where the pod has them (relative to a temporary directory),
/// adds a development keyring for the Secret, and runs the Deployment's gateway arguments
/// with `--check-config`.
fn check_config(overlay: &str, files: &serde_json::Map<String, Value>, args: &[&str]) {
    let dir = scratch_dir(overlay);
    // The pod's service-account mount (the cluster CA is read at start), stood in for by
    // the test CA and a token.
    let service_account = dir.join("serviceaccount");
    std::fs::create_dir_all(&service_account).expect("mkdir");
    std::fs::copy(
        root().join("tests/fixtures/ca-cert.pem"),
        service_account.join("ca.crt"),
    )
    .expect("stand-in CA");
    std::fs::write(service_account.join("token"), "stand-in").expect("stand-in token");
    for (name, text) in files {
        let text = text
            .as_str()
            .expect("text")
            .replace(SERVICE_ACCOUNT_DIR, &service_account.display().to_string());
        std::fs::write(dir.join(name), text).expect("write");
    }
    let bin = discreet_bin();
    let keys = Command::new(bin)
        .args(["keys", "dev", "--dir"])
        .arg(dir.join("keys"))
        .output()
        .expect("run discreet keys dev");
    assert!(
        keys.status.success(),
        "{}",
        String::from_utf8_lossy(&keys.stderr)
    );
    let pod_config = format!("{CONFIG_DIR}/discreet.yaml");
    let local_config = dir.join("discreet.yaml");
    let mut cmd = Command::new(bin);
    for arg in &args[1..] {
        if *arg == pod_config {
            cmd.arg(&local_config);
        } else {
            cmd.arg(arg);
        }
    }
    let out = cmd
        .arg("--check-config")
        .output()
        .expect("run discreet serve");
    assert!(
        out.status.success(),
        "{overlay}: the rendered configuration is refused by discreet serve --check-config:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn scratch_dir(label: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!(
        "discreet-deploy-{label}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The gateway binary: `DISCREET_BIN`, or built now (Cargo gives integration tests only
/// their own crate's binaries).
fn discreet_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("DISCREET_BIN") {
            return PathBuf::from(bin);
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "discreet-cli"])
            .current_dir(root())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p discreet-cli failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|t| if t.is_absolute() { t } else { root().join(t) })
            .unwrap_or_else(|| root().join("target"));
        target.join("debug/discreet")
    })
}

#[test]
fn shipped_copies_are_the_files_the_tests_use() {
    // kustomize reads only files inside a kustomization's directory (symlinks included), so
    // the manifests carry copies: they must not drift. deploy/sync-config.sh refreshes them.
    for name in ["discreet.yaml", "policy.yaml"] {
        assert_eq!(
            read(&format!("deploy/kubernetes/base/{name}")),
            read(&format!("config/{name}")),
            "deploy/kubernetes/base/{name} differs from config/{name}: run deploy/sync-config.sh"
        );
    }
    assert!(
        read(DEV_COLLECTOR_CONFIG) == read(COLLECTOR_CONFIG),
        "{DEV_COLLECTOR_CONFIG} differs from {COLLECTOR_CONFIG}: run deploy/sync-config.sh"
    );
    // The dev configuration is the shipped one with a static identity, nothing else.
    let shipped = yaml(&read("config/discreet.yaml"));
    let mut expected = shipped.clone();
    let mut dev = yaml(&read("deploy/kubernetes/overlays/dev/discreet.yaml"));
    assert!(
        dev["identity"]["static"].is_string(),
        "dev: static identity"
    );
    for doc in [&mut expected, &mut dev] {
        doc.as_object_mut().expect("a mapping").remove("identity");
    }
    assert_eq!(
        dev, expected,
        "overlays/dev/discreet.yaml differs from config/discreet.yaml beyond `identity`: \
         run deploy/sync-config.sh"
    );
    // The production configuration is the shipped one with the consent issuer's keys, the
    // revocation list and the API server's keys from URLs instead of files, nothing else
    // (their other settings included).
    let mut expected = shipped;
    let mut production = yaml(&read("deploy/kubernetes/overlays/production/discreet.yaml"));
    let shipped_caller_keys = expected["identity"]["service_account"]["keys"]
        .as_object_mut()
        .expect("identity.service_account.keys");
    assert!(
        shipped_caller_keys.remove("file").is_some(),
        "config/: caller keys from a file"
    );
    let caller_keys = production["identity"]["service_account"]["keys"]
        .as_object_mut()
        .expect("production: identity.service_account.keys");
    for field in ["url", "ca_file", "bearer_token_file"] {
        assert!(
            caller_keys.remove(field).is_some(),
            "production: identity.service_account.keys.{field}"
        );
    }
    for source in ["keys", "revocation"] {
        let from_file = expected["consent"][source]
            .as_object_mut()
            .expect("consent source")
            .remove("file");
        assert!(from_file.is_some(), "config/: consent.{source}.file");
        let url = production["consent"][source]
            .as_object_mut()
            .expect("consent source")
            .remove("url");
        assert!(
            url.as_ref()
                .and_then(Value::as_str)
                .is_some_and(|u| u.starts_with("https://")),
            "production: consent.{source}.url over HTTPS"
        );
    }
    assert_eq!(
        production, expected,
        "overlays/production/discreet.yaml differs from config/discreet.yaml beyond the \
         key and revocation sources: run deploy/sync-config.sh"
    );
}

/// The dev overlay's OpenTelemetry Collector runs deploy/otel-collector/collector.yaml, which
/// keeps every access span (no sampler; the file pipeline acknowledges only what it wrote)
/// and writes the OTLP JSON files `discreet audit` reads onto a volume; it forwards them to
/// the overlay's Jaeger, whose UI has a Service.
#[test]
fn the_dev_overlay_runs_the_collector_and_jaeger() {
    let docs = render("overlays/dev");

    // The configuration: OTLP in, a file of OTLP JSON and Jaeger out, nothing dropped.
    let config = yaml(&read(COLLECTOR_CONFIG));
    let otlp = &config["receivers"]["otlp"]["protocols"];
    assert_eq!(otlp["grpc"]["endpoint"], "0.0.0.0:4317", "OTLP/gRPC");
    assert_eq!(otlp["http"]["endpoint"], "0.0.0.0:4318", "OTLP/HTTP");
    let processors = config["processors"].as_object().expect("processors");
    assert!(processors.contains_key("batch"), "a batch processor");
    for name in processors.keys() {
        let kind = name.split('/').next().unwrap_or_default();
        assert!(
            !["tail_sampling", "probabilistic_sampler", "filter"].contains(&kind),
            "processor {name} could drop access spans"
        );
    }
    let exporters = config["exporters"].as_object().expect("exporters");
    let (file_name, file) = exporters
        .iter()
        .find(|(name, _)| name.split('/').next() == Some("file"))
        .expect("a file exporter");
    assert_eq!(
        file["path"],
        format!("{AUDIT_FILES_DIR}/spans.json").as_str(),
        "the file exporter's path"
    );
    assert!(
        file["format"].is_null() || file["format"] == "json",
        "OTLP JSON, which discreet audit reads"
    );
    assert!(
        file["compression"].is_null(),
        "discreet audit reads plain JSON Lines"
    );
    assert!(
        file["rotation"].is_object(),
        "rotation (which also appends after a restart)"
    );
    assert_eq!(
        file["rotation"]["max_backups"], 0,
        "rotated files are kept (0: all)"
    );
    assert!(
        file["rotation"]["max_days"].is_null() || file["rotation"]["max_days"] == 0,
        "rotated files are not deleted by age"
    );
    let jaeger_exporter = exporters
        .iter()
        .find(|(name, e)| {
            name.split('/').next() == Some("otlp_grpc") && e["endpoint"] == "jaeger-collector:4317"
        })
        .map(|(name, _)| name)
        .expect("an OTLP/gRPC exporter to jaeger-collector:4317");
    let pipelines = config["service"]["pipelines"]
        .as_object()
        .expect("pipelines");
    let exports_to = |exporter: &str| {
        pipelines.iter().any(|(name, p)| {
            name.split('/').next() == Some("traces")
                && strings(&p["receivers"]).contains(&"otlp")
                && strings(&p["exporters"]).contains(&exporter)
        })
    };
    assert!(exports_to(file_name), "traces from OTLP to {file_name}");
    assert!(
        exports_to(jaeger_exporter),
        "traces from OTLP to {jaeger_exporter}"
    );
    for (name, p) in pipelines {
        if strings(&p["exporters"]).contains(&file_name.as_str()) {
            assert!(
                !strings(&p["processors"])
                    .iter()
                    .any(|p| p.starts_with("batch")),
                "{name}: the file pipeline acknowledges spans only once written (no batch)"
            );
        }
    }
    let health_port = host_port(&format!(
        "http://{}",
        config["extensions"]["health_check"]["endpoint"]
            .as_str()
            .expect("health_check endpoint")
    ))
    .1;
    assert!(strings(&config["service"]["extensions"]).contains(&"health_check"));

    // The collector's Deployment runs that file (the ConfigMap is the copy, and the copy
    // is the file), with a writable volume for the spans.
    let deployment = named(&docs, "Deployment", "otel-collector", "dev");
    let pod = &deployment["spec"]["template"]["spec"];
    let collector = container(pod, "otel-collector");
    assert!(
        collector["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("otel/opentelemetry-collector-contrib:")),
        "the contrib distribution (it has the file exporter)"
    );
    let config_arg = strings(&collector["args"])
        .iter()
        .find_map(|a| a.strip_prefix("--config="))
        .expect("--config=")
        .to_owned();
    let (config_dir, config_file) = config_arg.rsplit_once('/').expect("a path");
    let mounts = array(&collector["volumeMounts"]);
    let config_mount = mounts
        .iter()
        .find(|m| m["mountPath"] == config_dir)
        .expect("the configuration mounted");
    let config_map = volume(pod, &config_mount["name"])["configMap"]["name"]
        .as_str()
        .expect("a ConfigMap");
    assert_eq!(
        configmap_data(&docs, config_map)[config_file].as_str(),
        Some(read(COLLECTOR_CONFIG).as_str()),
        "the collector runs {COLLECTOR_CONFIG}"
    );
    let files_mount = mounts
        .iter()
        .find(|m| m["mountPath"] == AUDIT_FILES_DIR)
        .expect("a volume for the spans files");
    assert_ne!(
        files_mount["readOnly"], true,
        "the collector writes the spans"
    );
    assert!(
        volume(pod, &files_mount["name"])["emptyDir"].is_object(),
        "dev: the spans in an emptyDir"
    );
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(
            container_port(collector, &collector[probe]["httpGet"]["port"]),
            health_port,
            "the collector's {probe} reads the health_check extension"
        );
    }
    // Something that can read the files: the collector image has no shell.
    let reader = container(pod, "audit-reader");
    assert!(
        array(&reader["volumeMounts"])
            .iter()
            .any(|m| m["name"] == files_mount["name"] && m["readOnly"] == true),
        "audit-reader sees the spans files, read-only"
    );
    let service = named(&docs, "Service", "otel-collector", "dev");
    assert!(selects(
        &service["spec"]["selector"],
        &deployment["spec"]["template"]["metadata"]["labels"]
    ));
    for port in [4317, 4318] {
        let p = array(&service["spec"]["ports"])
            .iter()
            .find(|p| p["port"] == port)
            .unwrap_or_else(|| panic!("the collector Service on {port}"));
        assert_eq!(container_port(collector, &p["targetPort"]), port);
    }

    // Jaeger: OTLP/gRPC where the collector sends, and the UI.
    let jaeger = named(&docs, "Deployment", "jaeger", "dev");
    let jaeger_labels = &jaeger["spec"]["template"]["metadata"]["labels"];
    let jaeger_pod = &jaeger["spec"]["template"]["spec"];
    let jaeger_container = &array(&jaeger_pod["containers"])[0];
    assert!(
        jaeger_container["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("jaegertracing/")),
        "Jaeger"
    );
    for (service, port) in [("jaeger-collector", 4317), ("jaeger-query", 16686)] {
        let s = named(&docs, "Service", service, "dev");
        assert!(selects(&s["spec"]["selector"], jaeger_labels), "{service}");
        let p = array(&s["spec"]["ports"])
            .iter()
            .find(|p| p["port"] == port)
            .unwrap_or_else(|| panic!("{service} on {port}"));
        assert_eq!(
            container_port(jaeger_container, &p["targetPort"]),
            port,
            "{service}"
        );
    }

    // Both are hardened, sized and probed like the gateway (every_overlay_holds_the_pod_
    // invariants checks every Deployment), and reachable only as NetworkPolicies say.
    for labels in [
        &deployment["spec"]["template"]["metadata"]["labels"],
        jaeger_labels,
    ] {
        assert!(
            kind(&docs, "NetworkPolicy")
                .iter()
                .any(|n| selects(&n["spec"]["podSelector"], labels)),
            "dev: a NetworkPolicy for {labels}"
        );
    }
}

#[test]
fn the_base_renders_and_holds_no_private_key() {
    let docs = render("base");
    assert!(
        kind(&docs, "Secret").is_empty(),
        "the base ships no Secret: keys are created out of band (or generated in dev)"
    );
    for overlay in OVERLAYS {
        let text = serde_json::to_string(&render(&format!("overlays/{overlay}"))).expect("json");
        assert!(
            !text.contains("PRIVATE KEY"),
            "{overlay}: a private key in the manifests"
        );
    }
}

/// Dockerfile instructions (continuation lines joined, comments dropped) as
/// (INSTRUCTION, arguments).
fn dockerfile() -> Vec<(String, String)> {
    let text = read("deploy/docker/Dockerfile");
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (op, rest) = current
            .split_once(char::is_whitespace)
            .unwrap_or((&current, ""));
        out.push((op.to_ascii_uppercase(), rest.trim().to_string()));
        current.clear();
    }
    out
}

#[test]
fn the_dockerfile_is_multi_stage_non_root_and_read_only_friendly() {
    let instructions = dockerfile();
    let froms: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, (op, _))| op == "FROM")
        .map(|(i, _)| i)
        .collect();
    assert!(
        froms.len() >= 2,
        "multi-stage: a build stage and a runtime stage"
    );
    let builder = &instructions[froms[0]].1;
    assert!(
        builder.starts_with("rust:"),
        "the build stage is a Rust image: {builder}"
    );
    let runtime_from = froms[froms.len() - 1];
    let runtime = &instructions[runtime_from..];
    let runtime_image = &instructions[runtime_from].1;
    assert!(
        !runtime_image.starts_with("rust:"),
        "the runtime image is small, not the toolchain: {runtime_image}"
    );

    // Both binaries, built in release from the lock file, copied from the build stage.
    let build = instructions[froms[0]..runtime_from]
        .iter()
        .filter(|(op, _)| op == "RUN")
        .map(|(_, a)| a.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    for needle in [
        "--release",
        "--locked",
        "-p discreet-cli",
        "-p profile-store",
    ] {
        assert!(
            build.contains(needle),
            "the build runs cargo build {needle}"
        );
    }
    let copies: Vec<&String> = runtime
        .iter()
        .filter(|(op, _)| op == "COPY")
        .map(|(_, a)| a)
        .collect();
    assert!(
        copies.iter().any(|c| c.starts_with("--from=")
            && c.contains("discreet")
            && c.contains("profile-store")),
        "the runtime stage copies both binaries from the build stage"
    );

    // A numeric non-root user, last; nothing runs as root after it and no VOLUME or
    // writable directory is baked in (the root filesystem is mounted read-only).
    let users: Vec<(usize, &String)> = runtime
        .iter()
        .enumerate()
        .filter(|(_, (op, _))| op == "USER")
        .map(|(i, (_, a))| (i, a))
        .collect();
    let (user_at, user) = *users
        .last()
        .expect("a USER instruction in the runtime stage");
    let uid = user.split(':').next().unwrap_or_default();
    let uid: u32 = uid
        .parse()
        .unwrap_or_else(|_| panic!("USER {user} is not numeric"));
    assert!(uid > 0, "USER {user} is root");
    for (op, args) in &runtime[user_at..] {
        assert_ne!(op, "RUN", "RUN after USER: {args}");
        assert_ne!(
            op, "VOLUME",
            "VOLUME {args}: the root filesystem is read-only"
        );
    }
    for (op, args) in runtime {
        assert_ne!(
            op, "VOLUME",
            "VOLUME {args}: mount volumes in the manifests"
        );
        if op == "RUN" {
            for forbidden in ["mkdir", "chown", "chmod", "useradd", "adduser", "touch"] {
                assert!(
                    !args.split_whitespace().any(|w| w == forbidden),
                    "the runtime stage prepares a writable path ({forbidden}): {args}"
                );
            }
        }
    }
    let has = |op: &str| runtime.iter().any(|(o, _)| o == op);
    assert!(
        runtime
            .iter()
            .any(|(op, a)| op == "EXPOSE" && a.split_whitespace().any(|p| p == "50051")),
        "EXPOSE 50051"
    );
    assert!(
        has("HEALTHCHECK"),
        "a HEALTHCHECK (with its note on gRPC probes)"
    );
    let cmd = runtime
        .iter()
        .rev()
        .find(|(op, _)| op == "CMD")
        .map(|(_, a)| a.as_str())
        .expect("CMD");
    assert!(
        cmd.contains(&format!("{CONFIG_DIR}/discreet.yaml")),
        "the image's default configuration path is where the manifests mount it: {cmd}"
    );
}
