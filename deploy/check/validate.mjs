// Offline checks of deploy/kubernetes for `make deploy-check` (no cluster).
//
//   node deploy/check/validate.mjs --modules build/deploy-check/node_modules [--out DIR]
//   node deploy/check/validate.mjs --modules ... --gen-prometheusrule    (rewrites prometheusrule.yaml)
//   node deploy/check/validate.mjs --modules ... --kubectl               (also compares with `kubectl kustomize`)
//
// 1. Renders deploy/kubernetes/base and every overlay with a small
//    kustomize subset (resources, namespace, images, JSON 6902 patches with
//    a target); any other kustomization field is an error, so nothing is
//    silently left out.
// 2. Validates every rendered object against the Kubernetes OpenAPI schema
//    (npm kubernetes-models) or the prometheus-operator CRD schema
//    (@kubernetes-models/prometheus-operator), and rejects fields the
//    Kubernetes API does not know (the models of @kubernetes/client-node,
//    generated from the same OpenAPI; for the CRDs, the field lists of the
//    prometheus-operator models) — a typo such as hostPid is an error.
// 3. Checks what schemas cannot: selectors match labels, probe and Service
//    ports name a container port, mounts name volumes, the API server's
//    capability rules, the ConfigMap's listen port and config path, the
//    prometheus.io annotations and deploy/prometheus/kubernetes-pods.yml's
//    relabelling against the pod, the PrometheusRule against the rule files,
//    every runbook_url against deploy/runbooks.
// Writes each ConfigMap's aion.conf under --out for the agent's own parser.
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { fileURLToPath, pathToFileURL } from "node:url";

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const MODULES = path.resolve(opt("--modules") || "build/deploy-check/node_modules");
const OUT = opt("--out");
const DEPLOY = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const K8S = path.join(DEPLOY, "kubernetes");
const OVERLAYS = ["base", ...fs.readdirSync(path.join(K8S, "overlays")).sort().map((d) => "overlays/" + d)];

const mod = (p) => import(pathToFileURL(path.join(MODULES, p)).href);
const YAML = await mod("yaml/dist/index.js");
const clientModels = await mod("@kubernetes/client-node/dist/gen/models/ObjectSerializer.js");

let failures = 0;
const problem = (where, msg) => {
  failures++;
  console.log(`deploy-check: ${where}: ${msg}`);
};

function readYamlDocs(file) {
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"));
  const out = [];
  for (const d of docs) {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
    const v = d.toJS();
    if (v !== null) out.push(v);
  }
  return out;
}

// ---------------------------------------------------------------------------
// kustomize subset

const KNOWN = new Set(["apiVersion", "kind", "namespace", "resources", "patches", "images"]);
const CLUSTER_SCOPED = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass"]);

function pointer(p) {
  if (!p.startsWith("/")) throw new Error(`JSON pointer ${p} does not start with /`);
  return p.slice(1).split("/").map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function applyOp(obj, op, where) {
  const parts = pointer(op.path);
  const last = parts.pop();
  let cur = obj;
  for (const k of parts) {
    if (cur === null || typeof cur !== "object" || !(k in cur)) throw new Error(`${where}: path ${op.path} does not resolve (at ${k})`);
    cur = cur[k];
  }
  const isArr = Array.isArray(cur);
  const idx = isArr ? (last === "-" ? cur.length : Number(last)) : last;
  if (op.op === "add") {
    if (isArr) cur.splice(idx, 0, op.value);
    else cur[idx] = op.value;
  } else if (op.op === "replace" || op.op === "remove") {
    if (!(idx in cur)) throw new Error(`${where}: ${op.op} ${op.path}: no such member`);
    if (op.op === "remove") isArr ? cur.splice(idx, 1) : delete cur[idx];
    else cur[idx] = op.value;
  } else {
    throw new Error(`${where}: JSON patch op ${op.op} not supported here`);
  }
}

function matchesTarget(o, t) {
  const [group, version] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : ["", o.apiVersion];
  return (t.kind === undefined || t.kind === o.kind) && (t.name === undefined || t.name === o.metadata.name) &&
    (t.group === undefined || t.group === group) && (t.version === undefined || t.version === version);
}

function render(dir) {
  const kfile = path.join(dir, "kustomization.yaml");
  const [k] = readYamlDocs(kfile);
  for (const key of Object.keys(k)) if (!KNOWN.has(key)) throw new Error(`${kfile}: field ${key} is not handled by this checker`);
  let objs = [];
  for (const r of k.resources || []) {
    const p = path.join(dir, r);
    if (fs.statSync(p).isDirectory()) objs.push(...render(p));
    else objs.push(...readYamlDocs(p));
  }
  for (const patch of k.patches || []) {
    const where = path.join(dir, patch.path);
    const ops = readYamlDocs(where)[0];
    if (!Array.isArray(ops) || !patch.target) throw new Error(`${where}: only JSON 6902 patches with a target are handled`);
    const hits = objs.filter((o) => matchesTarget(o, patch.target));
    if (hits.length !== 1) throw new Error(`${where}: target ${JSON.stringify(patch.target)} matches ${hits.length} objects, not 1`);
    for (const op of ops) applyOp(hits[0], op, where);
  }
  for (const img of k.images || []) {
    let used = 0;
    for (const o of objs) {
      const spec = o.spec && o.spec.template && o.spec.template.spec;
      if (!spec) continue;
      for (const c of [...(spec.containers || []), ...(spec.initContainers || [])]) {
        const m = /^([^@:]+(?::\d+\/[^@:]+)?)(?::([^@]+))?(@.+)?$/.exec(c.image);
        if (m && m[1] === img.name) {
          c.image = (img.newName || m[1]) + (img.newTag ? ":" + img.newTag : m[2] ? ":" + m[2] : "");
          used++;
        }
      }
    }
    if (!used) throw new Error(`${kfile}: image ${img.name} is used by no container`);
  }
  if (k.namespace) for (const o of objs) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
  return objs;
}

// ---------------------------------------------------------------------------
// schemas

const kindKey = (o) => `${o.kind}/${o.metadata && o.metadata.namespace ? o.metadata.namespace + "/" : ""}${o.metadata && o.metadata.name}`;

async function modelFor(o) {
  const [group, version] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : ["", o.apiVersion];
  const file = group === "monitoring.coreos.com"
    ? `@kubernetes-models/prometheus-operator/${group}/${version}/${o.kind}.js`
    : `kubernetes-models/${group ? group + "/" : ""}${version}/${o.kind}.js`;
  if (!fs.existsSync(path.join(MODULES, file))) return null;
  return (await mod(file))[o.kind];
}

// Unknown fields, from the client's attribute maps (generated from the
// Kubernetes OpenAPI document).
function unknownFields(value, type, where, out) {
  if (value === null || value === undefined) return;
  let m;
  if ((m = /^Array<(.+)>$/.exec(type))) {
    if (Array.isArray(value)) value.forEach((v, i) => unknownFields(v, m[1], `${where}/${i}`, out));
    return;
  }
  if ((m = /^\{ \[key: string\]: (.+); \}$/.exec(type))) {
    if (typeof value === "object") for (const [k, v] of Object.entries(value)) unknownFields(v, m[1], `${where}/${k}`, out);
    return;
  }
  const cls = clientModels[type];
  if (!cls || typeof cls.getAttributeTypeMap !== "function" || typeof value !== "object") return;
  const attrs = new Map(cls.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    if (!attrs.has(k)) out.push(`${where}/${k}: unknown field (not in ${type})`);
    else unknownFields(v, attrs.get(k), `${where}/${k}`, out);
  }
}

// Unknown fields of the prometheus-operator CRDs: their compiled schemas
// accept any field, so the field lists come from the models' declarations
// (one `declare class` per type, inherited fields included).
const dtsCache = new Map();
function dtsFields(file) {
  if (dtsCache.has(file)) return dtsCache.get(file);
  let res = null;
  if (fs.existsSync(file)) {
    const text = fs.readFileSync(file, "utf8");
    const imports = new Map();
    for (const m of text.matchAll(/^import \{ (I\w+) \} from "(.+)";$/gm)) {
      imports.set(m[1], m[2].startsWith(".") ? path.join(path.dirname(file), m[2].replace(/\.js$/, ".d.ts")) : path.join(MODULES, m[2] + ".d.ts"));
    }
    const lines = text.split("\n").filter((l) => !/^\s*(\/\*\*|\*)/.test(l));
    const start = lines.findIndex((l) => /^export declare class \w+ extends Model</.test(l));
    if (start >= 0) {
      res = new Map();
      for (let i = start + 1; i < lines.length && lines[i] !== "}"; i++) {
        const m = /^    "([^"]+)"\??: (.*)$/.exec(lines[i]);
        if (!m) continue;
        let type = m[2].replace(/;$/, "");
        if (type.endsWith("{")) {
          type = "{}";
          while (i + 1 < lines.length && lines[i] !== "    };") i++;
        }
        const arr = /^Array<(I\w+)>$/.exec(type);
        const ref = arr ? arr[1] : /^I\w+$/.test(type) ? type : null;
        res.set(m[1], { file: ref ? imports.get(ref) : null, array: !!arr });
      }
    }
  }
  dtsCache.set(file, res);
  return res;
}

function unknownCrdFields(value, file, where, out) {
  const fields = file && dtsFields(file);
  if (!fields || value === null || typeof value !== "object" || Array.isArray(value)) return;
  for (const [k, v] of Object.entries(value)) {
    const f = fields.get(k);
    if (!f) out.push(`${where}/${k}: unknown field (not in ${path.basename(file, ".d.ts")})`);
    else if (f.array && Array.isArray(v)) v.forEach((x, i) => unknownCrdFields(x, f.file, `${where}/${k}/${i}`, out));
    else if (!f.array) unknownCrdFields(v, f.file, `${where}/${k}`, out);
  }
}

function clientType(o) {
  const version = o.apiVersion.includes("/") ? o.apiVersion.split("/")[1] : o.apiVersion;
  return version.charAt(0).toUpperCase() + version.slice(1) + o.kind;
}

// ---------------------------------------------------------------------------
// semantics

const labelsMatch = (sel, labels) => Object.entries(sel || {}).every(([k, v]) => (labels || {})[k] === v);
const CAPS = new Set(["AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "BPF", "CHECKPOINT_RESTORE", "CHOWN",
  "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER", "KILL", "LEASE", "LINUX_IMMUTABLE",
  "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "PERFMON", "SETFCAP",
  "SETGID", "SETPCAP", "SETUID", "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE", "SYS_NICE", "SYS_PACCT", "SYS_PTRACE",
  "SYS_RAWIO", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "SYSLOG", "WAKE_ALARM", "ALL"]);

function checkSemantics(objs, where) {
  const by = (kind) => objs.filter((o) => o.kind === kind);
  const [ds] = by("DaemonSet");
  if (!ds) return problem(where, "no DaemonSet");
  const pod = ds.spec.template;
  const ps = pod.spec;
  if (!labelsMatch(ds.spec.selector.matchLabels, pod.metadata.labels)) problem(where, "DaemonSet selector does not match its pod labels");
  if (ps.hostPID !== true) problem(where, "DaemonSet pod without hostPID: true");
  if (!(ps.tolerations || []).some((t) => t.operator === "Exists" && !t.key && !t.effect)) problem(where, "DaemonSet does not tolerate every taint");
  const volumes = new Map((ps.volumes || []).map((v) => [v.name, v]));
  const used = new Set();
  const c = ps.containers[0];
  const ports = new Map((c.ports || []).map((p) => [p.name, p.containerPort]));
  for (const [probe, want] of [["livenessProbe", "/healthz"], ["readinessProbe", "/readyz"]]) {
    const g = c[probe] && c[probe].httpGet;
    if (!g || g.path !== want) problem(where, `${probe} is not an httpGet of ${want}`);
    else if (typeof g.port === "string" && !ports.has(g.port)) problem(where, `${probe} port ${g.port} is not a container port name`);
  }
  for (const m of c.volumeMounts || []) {
    if (!volumes.has(m.name)) problem(where, `volumeMount ${m.name} has no volume`);
    used.add(m.name);
  }
  for (const v of volumes.keys()) if (!used.has(v)) problem(where, `volume ${v} is not mounted`);
  for (const p of ["/sys/kernel/btf", "/sys/kernel/tracing", "/sys/fs/bpf", "/sys/fs/cgroup"]) {
    const m = (c.volumeMounts || []).find((x) => x.mountPath === p);
    if (!m || !volumes.get(m.name).hostPath || volumes.get(m.name).hostPath.path !== p) problem(where, `${p} is not mounted from the host`);
  }
  const sc = c.securityContext || {};
  if (sc.readOnlyRootFilesystem !== true) problem(where, "the container's root file system is not read-only");
  const add = (sc.capabilities && sc.capabilities.add) || [];
  for (const cap of [...add, ...((sc.capabilities && sc.capabilities.drop) || [])]) {
    if (!CAPS.has(cap)) problem(where, `capability ${cap} is not a Linux capability name as Kubernetes spells it (no CAP_ prefix)`);
  }
  // the API server's rule (pkg/apis/core/validation): no privilege
  // escalation forbidden together with privileged or CAP_SYS_ADMIN
  if (sc.allowPrivilegeEscalation === false && (sc.privileged || add.includes("SYS_ADMIN"))) {
    problem(where, "allowPrivilegeEscalation: false together with privileged or SYS_ADMIN is refused by the API server");
  }
  if (!sc.privileged) for (const cap of ["BPF", "PERFMON", "SYS_PTRACE", "DAC_READ_SEARCH"]) {
    if (!add.includes(cap)) problem(where, `capability ${cap} is not added`);
  }
  const ann = pod.metadata.annotations || {};
  const metricsPort = ports.get("metrics");
  if (ann["prometheus.io/scrape"] !== "true" || Number(ann["prometheus.io/port"]) !== metricsPort || ann["prometheus.io/path"] !== "/metrics") {
    problem(where, `prometheus.io annotations ${JSON.stringify(ann)} do not name the metrics port ${metricsPort} and /metrics`);
  }
  // config file: --config path = a ConfigMap key mounted there; listen port
  const a = c.args || [];
  const cfgPath = a[a.indexOf("--config") + 1];
  const cm = by("ConfigMap")[0];
  const cmVol = [...volumes.values()].find((v) => v.configMap && v.configMap.name === cm.metadata.name);
  const cmMount = cmVol && (c.volumeMounts || []).find((m) => m.name === cmVol.name);
  const key = cmMount && cfgPath && cfgPath.startsWith(cmMount.mountPath + "/") ? cfgPath.slice(cmMount.mountPath.length + 1) : null;
  if (!key || !(key in cm.data)) problem(where, `--config ${cfgPath} is not a key of ConfigMap ${cm.metadata.name} mounted in the container`);
  else {
    const listen = /^\s*listen\s*=\s*(\S+)/m.exec(cm.data[key]);
    const port = listen ? Number(listen[1].split(":").pop()) : 9090;
    if (port !== metricsPort) problem(where, `${key} listens on ${port}, the container port is ${metricsPort}`);
    if (OUT) fs.writeFileSync(path.join(OUT, `${where.replace(/\//g, "-")}-${key}`), cm.data[key]);
  }
  for (const svc of by("Service")) {
    if (svc.spec.clusterIP !== "None") problem(where, `Service ${svc.metadata.name} is not headless`);
    if (!labelsMatch(svc.spec.selector, pod.metadata.labels)) problem(where, `Service ${svc.metadata.name} selects no agent pod`);
    for (const p of svc.spec.ports) {
      if (typeof p.targetPort === "string" ? !ports.has(p.targetPort) : p.targetPort !== metricsPort) problem(where, `Service port ${p.name} targets no container port`);
    }
  }
  for (const sm of by("ServiceMonitor")) {
    const svcs = by("Service").filter((s) => labelsMatch(sm.spec.selector.matchLabels, s.metadata.labels) &&
      (!sm.spec.namespaceSelector || (sm.spec.namespaceSelector.matchNames || []).includes(s.metadata.namespace)));
    if (svcs.length !== 1) problem(where, `ServiceMonitor ${sm.metadata.name} selects ${svcs.length} Services, not 1`);
    for (const ep of sm.spec.endpoints) {
      if (svcs[0] && !svcs[0].spec.ports.some((p) => p.name === ep.port)) problem(where, `ServiceMonitor port ${ep.port} is not a port of Service ${svcs[0].metadata.name}`);
    }
    if (svcs[0] && svcs[0].metadata.name !== "aion-agent") problem(where, "the ServiceMonitor's job label (the Service name) is not aion-agent, which the alerts select");
  }
  for (const pr of by("PrometheusRule")) {
    const want = ruleGroups();
    if (JSON.stringify(pr.spec.groups) !== JSON.stringify(want)) problem(where, `PrometheusRule ${pr.metadata.name} differs from deploy/prometheus/rules (run make deploy-gen)`);
  }
  return { pod, c };
}

function ruleGroups() {
  const groups = [];
  for (const f of ["aion-recording.rules.yml", "aion-alerts.rules.yml"]) groups.push(...readYamlDocs(path.join(DEPLOY, "prometheus", "rules", f))[0].groups);
  return groups;
}

// deploy/prometheus/kubernetes-pods.yml: its keep rules keep the agent's
// pod, and its address rule puts the annotated port on the pod's address
function checkPodScrapeJob(pod) {
  const where = "prometheus/kubernetes-pods.yml";
  const [jobs] = readYamlDocs(path.join(DEPLOY, "prometheus", "kubernetes-pods.yml"));
  const job = jobs[0];
  const san = (s) => s.replace(/[^a-zA-Z0-9_]/g, "_");
  const labels = { __address__: "10.0.0.7", __meta_kubernetes_pod_node_name: "node-1", __meta_kubernetes_namespace: "aion", __meta_kubernetes_pod_name: "aion-agent-x" };
  for (const [k, v] of Object.entries(pod.metadata.labels)) labels["__meta_kubernetes_pod_label_" + san(k)] = v;
  for (const [k, v] of Object.entries(pod.metadata.annotations)) labels["__meta_kubernetes_pod_annotation_" + san(k)] = v;
  for (const r of job.relabel_configs) {
    const src = (r.source_labels || []).map((l) => labels[l] || "").join(r.separator || ";");
    const re = new RegExp("^(?:" + (r.regex === undefined ? "(.*)" : r.regex) + ")$");
    const m = re.exec(src);
    const action = r.action || "replace";
    if (action === "keep") {
      if (!m) return problem(where, `relabel keep on ${r.source_labels} drops the agent's pod (value ${JSON.stringify(src)})`);
    } else if (action === "replace") {
      if (m) labels[r.target_label] = (r.replacement === undefined ? "$1" : r.replacement).replace(/\$(\d)/g, (_, i) => m[i] || "");
    } else return problem(where, `relabel action ${action} not simulated here`);
  }
  const port = pod.metadata.annotations["prometheus.io/port"];
  if (labels.__address__ !== `10.0.0.7:${port}` || labels.job !== "aion-agent" || labels.__metrics_path__ !== "/metrics" || labels.instance !== "node-1") {
    problem(where, `the agent's pod is scraped as ${JSON.stringify(labels)}`);
  }
}

function checkRunbooks() {
  for (const g of ruleGroups()) for (const r of g.rules) {
    if (!r.alert) continue;
    const url = r.annotations && r.annotations.runbook_url;
    if (!url || !url.startsWith("deploy/runbooks/") || !fs.existsSync(path.join(DEPLOY, "..", url))) problem("prometheus/rules", `alert ${r.alert}: runbook_url ${url} is not a file under deploy/runbooks`);
  }
}

// ---------------------------------------------------------------------------

if (args.includes("--gen-prometheusrule")) {
  const pr = {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "PrometheusRule",
    metadata: { name: "aion", namespace: "aion", labels: { "app.kubernetes.io/name": "aion-agent" } },
    spec: { groups: ruleGroups() },
  };
  const file = path.join(K8S, "overlays", "prometheus-operator", "prometheusrule.yaml");
  fs.writeFileSync(file, "# Generated by `make deploy-gen` from deploy/prometheus/rules/*.yml: edit those.\n" +
    YAML.stringify(pr, { lineWidth: 0 }));
  console.log(`deploy-check: wrote ${path.relative(process.cwd(), file)}`);
  process.exit(0);
}

if (OUT) fs.mkdirSync(OUT, { recursive: true });
let objects = 0;
for (const o of OVERLAYS) {
  let objs;
  try {
    objs = render(path.join(K8S, o));
  } catch (e) {
    problem(o, e.message);
    continue;
  }
  for (const obj of objs) {
    const where = `${o}: ${kindKey(obj)}`;
    const Model = await modelFor(obj);
    if (!Model) {
      problem(where, `no schema for ${obj.apiVersion} ${obj.kind}`);
      continue;
    }
    try {
      new Model(obj).validate();
    } catch (e) {
      problem(where, `schema: ${e.message}`);
    }
    const unknown = [];
    if (obj.apiVersion.startsWith("monitoring.coreos.com/")) {
      const file = path.join(MODULES, "@kubernetes-models/prometheus-operator", obj.apiVersion, obj.kind + ".d.ts");
      if (!dtsFields(file)) problem(where, `no declarations in ${file}`);
      unknownCrdFields(obj, file, "", unknown);
    } else {
      if (!clientModels[clientType(obj)]) problem(where, `no client model ${clientType(obj)}`);
      unknownFields(obj, clientType(obj), "", unknown);
    }
    for (const u of unknown) problem(where, u);
    objects++;
  }
  const s = checkSemantics(objs, o);
  if (o === "base" && s) checkPodScrapeJob(s.pod);
  if (args.includes("--kubectl")) {
    const out = execFileSync("kubectl", ["kustomize", path.join(K8S, o)], { encoding: "utf8" });
    const theirs = YAML.parseAllDocuments(out).map((d) => d.toJS());
    const canon = (list) => JSON.stringify(list.map((x) => [kindKey(x), JSON.stringify(x, Object.keys(flat(x)).sort())]).sort());
    if (canon(theirs) !== canon(objs)) problem(o, "renders differently from kubectl kustomize");
    else console.log(`deploy-check: ${o}: same ${objs.length} objects as kubectl kustomize`);
  }
  console.log(`deploy-check: ${o}: ${objs.length} objects rendered and checked`);
}
checkRunbooks();

function flat(o, out = {}) {
  if (o && typeof o === "object") for (const [k, v] of Object.entries(o)) { out[k] = 1; flat(v, out); }
  return out;
}

const versions = ["kubernetes-models", "@kubernetes-models/prometheus-operator", "@kubernetes/client-node"]
  .map((p) => `${p} ${JSON.parse(fs.readFileSync(path.join(MODULES, p, "package.json"), "utf8")).version}`).join(", ");
if (failures) {
  console.log(`deploy-check: kubernetes: ${failures} problem(s)`);
  process.exit(1);
}
console.log(`deploy-check: kubernetes: ${objects} objects valid (${versions})`);
