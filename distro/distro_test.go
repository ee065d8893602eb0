// Package distro holds the deployment files. No container engine or cluster runs here, so these
// tests check them statically, as Kubernetes and Helm would read them: every manifest decodes
// strictly into the API types, every Helm values file is rendered with the official chart, and
// every collector config either ships validates against the built distribution.
package distro

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/otelcol-vsr/otelcol-vsr/distro/shipped"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrsampler"
)

const repoRoot = ".."

// addOns are the manifests applied beside either layout, raw or Helm.
var addOns = []string{"priorityclass.yaml", "networkpolicy.yaml", "monitoring.yaml", "backend-tls.yaml"}

// layout is one way to install the collectors: a raw manifest or a chart release.
type layout struct {
	name string
	objs []shipped.Object
}

func manifest(t *testing.T, name string) []shipped.Object {
	objs, err := shipped.Manifest(repoRoot, name)
	require.NoError(t, err)
	return objs
}

// helmBinary is the Helm make test builds into .tools/ (distro/helm/install.sh).
func helmBinary(t *testing.T) string {
	return tool(t, "HELM_BIN", filepath.Join(repoRoot, ".tools", "helm-v3.22.0", "helm"), "make test builds it")
}

// otelcolBinary is the built distribution: make test passes OTELCOL_VSR_BIN.
func otelcolBinary(t *testing.T) string {
	return tool(t, "OTELCOL_VSR_BIN", filepath.Join(repoRoot, "_build", "otelcol-vsr"), "make test builds it")
}

func tool(t *testing.T, env, fallback, how string) string {
	bin := os.Getenv(env)
	if bin == "" {
		bin = fallback
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing (%v): %s", bin, err, how)
		}
		t.Skipf("%s is missing (%v): %s", bin, err, how)
	}
	return bin
}

func layouts(t *testing.T) []layout {
	helm := helmBinary(t)
	var ls []layout
	for _, name := range shipped.Layouts() {
		objs, err := shipped.Load(helm, repoRoot, name)
		require.NoError(t, err)
		ls = append(ls, layout{name, objs})
	}
	return ls
}

func objectsOf[T any](objs []shipped.Object) []*T {
	var out []*T
	for _, o := range objs {
		if v, ok := any(o).(*T); ok {
			out = append(out, v)
		}
	}
	return out
}

func workloads(t *testing.T, l layout) []shipped.Workload {
	ws, err := shipped.Workloads(l.objs)
	require.NoError(t, err, l.name)
	require.NotEmpty(t, ws, l.name)
	return ws
}

// parseConfig reads a collector config into maps.
func parseConfig(t *testing.T, raw []byte) map[string]any {
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &cfg))
	return cfg
}

// at follows a path of keys through a config; nil where it ends early.
func at(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func TestAddOnsDecode(t *testing.T) {
	for _, name := range addOns {
		assert.NotEmpty(t, manifest(t, name), name)
	}
}

// Defect: the Helm install crash-looped because the kubelet creates a hostPath as root 0755 and
// the collector runs as 10001 with no capabilities. Every pod, raw or rendered, must run as
// 10001 locked down, keep its state on volumes it owns, and be probed, sized and scheduled as
// the README says.
func TestCollectorPods(t *testing.T) {
	priorityClasses := objectsOf[schedulingv1.PriorityClass](manifest(t, "priorityclass.yaml"))
	for _, l := range layouts(t) {
		for _, w := range workloads(t, l) {
			t.Run(l.name+"/"+w.Name, func(t *testing.T) {
				cfg := parseConfig(t, w.Config)
				require.Len(t, w.Pod.Containers, 1)
				c := w.Pod.Containers[0]
				checkLockedDown(t, w.Pod, c)
				checkProbes(t, c)
				checkStateOnOwnedVolumes(t, w.Pod, c, cfg)
				checkSizing(t, c, cfg)
				checkTelemetryPorts(t, c, cfg)
				// Defect: the annotations pointed at 8889 (request metrics only) while every alert
				// reads the collector's own telemetry: a Prometheus that discovers pods by
				// annotation scraped nothing the alerts need.
				scraped, err := strconv.Atoi(w.Annotations["prometheus.io/port"])
				require.NoError(t, err, "a prometheus.io/port annotation")
				assert.Equal(t, at(cfg, "service", "telemetry", "metrics", "readers"), []any{map[string]any{"pull": map[string]any{"exporter": map[string]any{
					"prometheus": map[string]any{"host": "${env:MY_POD_IP}", "port": scraped}}}}}, "the annotation names the port the alerts' metrics are on")
				checkHashKeyRequired(t, c)
				usesAPI := at(cfg, "exporters", "load_balancing", "resolver", "k8s") != nil
				assert.Equal(t, usesAPI, w.Pod.AutomountServiceAccountToken == nil || *w.Pod.AutomountServiceAccountToken,
					"a token only where the k8s resolver needs one")
				if w.Kind == "DaemonSet" {
					// Routers on tainted nodes (GPU pools) need their node's collector.
					assert.True(t, slices.ContainsFunc(w.Pod.Tolerations, func(tol corev1.Toleration) bool {
						return tol.Operator == corev1.TolerationOpExists && tol.Key == ""
					}), "tolerates every taint")
					assert.True(t, slices.ContainsFunc(priorityClasses, func(pc *schedulingv1.PriorityClass) bool {
						return pc.Name == w.Pod.PriorityClassName
					}), "priorityClassName %q is shipped in priorityclass.yaml", w.Pod.PriorityClassName)
					assert.ElementsMatch(t, []int32{4317, 4318}, hostPorts(c))
				}
				if at(cfg, "exporters", "otlp_grpc/backend") != nil {
					checkBackendTLS(t, w.Pod, c)
				}
			})
		}
	}
}

func checkLockedDown(t *testing.T, pod corev1.PodSpec, c corev1.Container) {
	require.NotNil(t, pod.SecurityContext)
	assert.Equal(t, int64(10001), *pod.SecurityContext.RunAsUser)
	assert.True(t, *pod.SecurityContext.RunAsNonRoot)
	require.NotNil(t, c.SecurityContext)
	assert.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)
	assert.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	assert.Equal(t, []corev1.Capability{"ALL"}, c.SecurityContext.Capabilities.Drop)
	assert.Empty(t, c.SecurityContext.Capabilities.Add)
}

// containerPort resolves a probe's port, by name or number.
func containerPort(c corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return 0
}

func checkProbes(t *testing.T, c corev1.Container) {
	for name, probe := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
		require.NotNil(t, probe, "%s probe", name)
		assert.Equal(t, int32(13133), containerPort(c, probe.HTTPGet.Port), "%s probe on health_check", name)
	}
	// A slow start (a large queue to open) must not be killed by the liveness probe.
	assert.GreaterOrEqual(t, c.StartupProbe.PeriodSeconds*c.StartupProbe.FailureThreshold, int32(60))
}

// stateDirectories are the directories a collector config writes to.
func stateDirectories(cfg map[string]any) []string {
	var dirs []string
	for _, section := range []string{"extensions", "processors"} {
		for _, component := range asMap(at(cfg, section)) {
			for _, dir := range []any{at(component, "directory"), at(component, "spill", "directory"), at(component, "journal", "directory")} {
				if s, ok := dir.(string); ok {
					dirs = append(dirs, s)
				}
			}
		}
	}
	return dirs
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// checkStateOnOwnedVolumes: the root filesystem is read-only, so each directory the collector
// writes is a volume; a hostPath one is handed to uid 10001 by an init container that holds
// nothing but CAP_CHOWN; an emptyDir one is bounded and its size requested.
func checkStateOnOwnedVolumes(t *testing.T, pod corev1.PodSpec, c corev1.Container, cfg map[string]any) {
	dirs := stateDirectories(cfg)
	require.NotEmpty(t, dirs, "the queue lives on disk")
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	for _, dir := range dirs {
		i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
			return !m.ReadOnly && (dir == m.MountPath || strings.HasPrefix(dir, m.MountPath+"/"))
		})
		require.GreaterOrEqual(t, i, 0, "%s is on a writable volume", dir)
		mount := c.VolumeMounts[i]
		v, ok := volumes[mount.Name]
		if !ok {
			continue // a volumeClaimTemplate: fsGroup hands it over
		}
		switch {
		case v.HostPath != nil:
			checkHandedOver(t, pod, mount)
		case v.EmptyDir != nil:
			require.NotNil(t, v.EmptyDir.SizeLimit, "%s is bounded", dir)
			requested := c.Resources.Requests[corev1.ResourceEphemeralStorage]
			limit := c.Resources.Limits[corev1.ResourceEphemeralStorage]
			assert.GreaterOrEqual(t, requested.Cmp(*v.EmptyDir.SizeLimit), 0, "the scheduler reserves the scratch space")
			assert.Positive(t, limit.Cmp(*v.EmptyDir.SizeLimit))
		}
	}
	assert.Equal(t, int64(10001), *pod.SecurityContext.FSGroup)
}

func checkHandedOver(t *testing.T, pod corev1.PodSpec, mount corev1.VolumeMount) {
	i := slices.IndexFunc(pod.InitContainers, func(ic corev1.Container) bool {
		return slices.ContainsFunc(ic.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == mount.Name })
	})
	require.GreaterOrEqual(t, i, 0, "an init container hands the hostPath %s to the collector", mount.Name)
	ic := pod.InitContainers[i]
	command := strings.Join(append(ic.Command, ic.Args...), " ")
	assert.Contains(t, command, "chown -R 10001:10001 "+mount.MountPath)
	sc := ic.SecurityContext
	require.NotNil(t, sc)
	assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
	assert.Equal(t, []corev1.Capability{"CHOWN"}, sc.Capabilities.Add, "root, but able only to chown")
	assert.False(t, *sc.AllowPrivilegeEscalation)
	assert.True(t, *sc.ReadOnlyRootFilesystem)
}

// gomemlimit is the container's GOMEMLIMIT in bytes: a literal (the chart's) or counted from the
// memory limit by a resourceFieldRef divisor (the raw manifests').
func gomemlimit(t *testing.T, c corev1.Container) int64 {
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	v, ok := env["GOMEMLIMIT"]
	require.True(t, ok, "GOMEMLIMIT is set")
	value := v.Value
	if ref := regexp.MustCompile(`^\$\((\w+)\)MiB$`).FindStringSubmatch(value); ref != nil {
		field := env[ref[1]].ValueFrom.ResourceFieldRef
		require.Equal(t, "limits.memory", field.Resource)
		limit := c.Resources.Limits[corev1.ResourceMemory]
		units := (limit.Value() + field.Divisor.Value() - 1) / field.Divisor.Value() // the kubelet rounds up
		value = fmt.Sprintf("%dMi", units)
	}
	q, err := resource.ParseQuantity(strings.TrimSuffix(value, "B"))
	require.NoError(t, err, value)
	return q.Value()
}

// checkSizing is the README's sizing rule. With a memory limit L: GOMEMLIMIT 80 % of L;
// memory_limiter at 75 % with a 15 % spike, so it refuses from 60 %; vsr_sampler's buffer at
// most 25 % of L (its accounting follows the heap), so that it fills and spills while the
// rest of the process keeps 35 % of L below the point where refusals start.
func checkSizing(t *testing.T, c corev1.Container, cfg map[string]any) {
	limitQ := c.Resources.Limits[corev1.ResourceMemory]
	limit := limitQ.Value()
	require.Positive(t, limit, "a memory limit")
	goLimit := gomemlimit(t, c)
	assert.InDelta(t, 0.8, float64(goLimit)/float64(limit), 0.01, "GOMEMLIMIT at 80 %% of the limit")
	hardPct := at(cfg, "processors", "memory_limiter", "limit_percentage")
	spikePct := at(cfg, "processors", "memory_limiter", "spike_limit_percentage")
	require.Equal(t, 75, hardPct)
	require.Equal(t, 15, spikePct)
	assert.Less(t, limit*75/100, goLimit, "the memory limiter's hard limit below GOMEMLIMIT: the GC is forced before the runtime strains")
	if buffer, ok := at(cfg, "processors", "vsr_sampler", "max_buffer_bytes").(int); ok {
		soft := limit * (75 - 15) / 100
		assert.LessOrEqual(t, int64(buffer), limit/4)
		assert.LessOrEqual(t, int64(buffer), soft-limit*35/100, "the buffer spills before the memory limiter refuses")
	}
}

// checkTelemetryPorts: the collector's own metrics and the request metrics listen on the pod's
// address, on declared ports the PodMonitor scrapes by name.
func checkTelemetryPorts(t *testing.T, c corev1.Container, cfg map[string]any) {
	readers, _ := at(cfg, "service", "telemetry", "metrics", "readers").([]any)
	require.Len(t, readers, 1)
	prom := at(readers[0], "pull", "exporter", "prometheus")
	assert.Equal(t, "${env:MY_POD_IP}", at(prom, "host"), "reachable by Prometheus, not on localhost")
	want := map[string]int32{"metrics": int32(at(prom, "port").(int))}
	if endpoint, ok := at(cfg, "exporters", "prometheus/requests", "endpoint").(string); ok {
		port, err := strconv.Atoi(endpoint[strings.LastIndexByte(endpoint, ':')+1:])
		require.NoError(t, err)
		want["requests"] = int32(port)
	}
	for name, port := range want {
		assert.True(t, slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == name && p.ContainerPort == port }),
			"port %s (%d) declared", name, port)
	}
}

func hostPorts(c corev1.Container) []int32 {
	var ports []int32
	for _, p := range c.Ports {
		if p.HostPort != 0 {
			ports = append(ports, p.HostPort)
		}
	}
	return ports
}

// checkBackendTLS: the backend's CA comes from backend-tls.yaml's Secret, mounted where
// VSR_TRACES_CA_FILE is documented to point, and optional until it exists.
func checkBackendTLS(t *testing.T, pod corev1.PodSpec, c corev1.Container) {
	secrets := objectsOf[corev1.Secret](manifest(t, "backend-tls.yaml"))
	require.Len(t, secrets, 1)
	i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool {
		return v.Secret != nil && v.Secret.SecretName == secrets[0].Name
	})
	require.GreaterOrEqual(t, i, 0, "the backend TLS Secret is a volume")
	assert.True(t, *pod.Volumes[i].Secret.Optional)
	assert.Contains(t, c.VolumeMounts, corev1.VolumeMount{Name: pod.Volumes[i].Name, MountPath: "/etc/otelcol-vsr/tls", ReadOnly: true})
	assert.Contains(t, secrets[0].StringData, "ca.crt")
	assert.Contains(t, envNames(c), "VSR_TRACES_CA_FILE")
}

func envNames(c corev1.Container) []string {
	var names []string
	for _, e := range c.Env {
		names = append(names, e.Name)
	}
	return names
}

// The gateways: a headless Service the agents' resolver names, spread across nodes, at most one
// away at a time.
func TestGateways(t *testing.T) {
	for _, l := range layouts(t) {
		for _, w := range workloads(t, l) {
			if w.Kind != "StatefulSet" {
				continue
			}
			t.Run(l.name, func(t *testing.T) {
				ss := objectsOf[appsv1.StatefulSet](l.objs)[0]
				i := slices.IndexFunc(objectsOf[corev1.Service](l.objs), func(s *corev1.Service) bool { return s.Name == ss.Spec.ServiceName })
				require.GreaterOrEqual(t, i, 0)
				svc := objectsOf[corev1.Service](l.objs)[i]
				assert.Equal(t, corev1.ClusterIPNone, svc.Spec.ClusterIP, "the resolver needs every gateway pod")
				assert.True(t, shipped.Selects(ss.Spec.Selector, w.Labels))
				assert.Equal(t, "otelcol-vsr-gateway", svc.Name, "the name the agents' resolver uses")
				pdbs := objectsOf[policyv1.PodDisruptionBudget](l.objs)
				require.Len(t, pdbs, 1)
				assert.True(t, shipped.Selects(pdbs[0].Spec.Selector, w.Labels))
				assert.Equal(t, intstr.FromInt32(1), *pdbs[0].Spec.MaxUnavailable)
				assert.True(t, slices.ContainsFunc(w.Pod.TopologySpreadConstraints, func(c corev1.TopologySpreadConstraint) bool {
					return c.TopologyKey == "kubernetes.io/hostname" && shipped.Selects(c.LabelSelector, w.Labels)
				}), "gateways on different nodes")
				require.Len(t, ss.Spec.VolumeClaimTemplates, 1, "each gateway's queue on its own claim")
			})
		}
	}
}

// Routers that cannot name their node reach it by a Service that keeps traffic on the node.
func TestNodeServiceStaysOnTheNode(t *testing.T) {
	for _, l := range layouts(t) {
		for _, w := range workloads(t, l) {
			if w.Kind != "DaemonSet" {
				continue
			}
			i := slices.IndexFunc(objectsOf[corev1.Service](l.objs), func(s *corev1.Service) bool {
				return len(s.Spec.Selector) > 0 && shipped.Selects(&metav1.LabelSelector{MatchLabels: s.Spec.Selector}, w.Labels)
			})
			require.GreaterOrEqual(t, i, 0, "%s: a Service for %s", l.name, w.Name)
			svc := objectsOf[corev1.Service](l.objs)[i]
			assert.Equal(t, corev1.ServiceInternalTrafficPolicyLocal, *svc.Spec.InternalTrafficPolicy, l.name)
			assert.True(t, slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == 4317 }), l.name)
		}
	}
}

// NetworkPolicy and PodMonitor select every collector pod, raw or rendered: OTLP from the
// routers (or, for gateways, the agents), metrics for Prometheus.
func TestPoliciesAndMonitorsSelectEveryPod(t *testing.T) {
	policies := objectsOf[networkingv1.NetworkPolicy](manifest(t, "networkpolicy.yaml"))
	monitors := objectsOf[monitoringv1.PodMonitor](manifest(t, "monitoring.yaml"))
	require.Len(t, monitors, 1)
	for _, l := range layouts(t) {
		for _, w := range workloads(t, l) {
			t.Run(l.name+"/"+w.Name, func(t *testing.T) {
				c := w.Pod.Containers[0]
				allowed := map[int32]bool{}
				for _, p := range policies {
					if !shipped.Selects(&p.Spec.PodSelector, w.Labels) {
						continue
					}
					for _, rule := range p.Spec.Ingress {
						require.NotEmpty(t, rule.From, "%s: every rule names who may connect", p.Name)
						for _, port := range rule.Ports {
							allowed[port.Port.IntVal] = true
						}
					}
				}
				for _, p := range c.Ports {
					assert.True(t, allowed[p.ContainerPort] || p.Name == "health", "port %s (%d) admitted", p.Name, p.ContainerPort)
				}
				assert.True(t, shipped.Selects(&monitors[0].Spec.Selector, w.Labels), "scraped")
				for _, e := range monitors[0].Spec.PodMetricsEndpoints {
					if e.Port != nil && *e.Port == "metrics" {
						assert.True(t, slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == *e.Port }))
					}
				}
			})
		}
	}
}

// The chart and the raw manifests ship the same collector: the config the chart produces from
// each values file, with its defaults merged in, is the raw manifest's, but for the resource
// attributes the chart adds to the collector's own telemetry.
func TestChartAndManifestsShipOneConfig(t *testing.T) {
	raw := map[string][]byte{}
	for _, name := range []string{"daemonset.yaml", "gateway.yaml"} {
		for _, w := range workloads(t, layout{name, manifest(t, name)}) {
			raw[w.Name] = w.Config
		}
	}
	helm := helmBinary(t)
	for _, r := range shipped.Releases {
		if len(r.Overlays) > 0 {
			continue // TestTLSOverlays
		}
		t.Run(r.Values, func(t *testing.T) {
			objs, err := shipped.Render(helm, repoRoot, r)
			require.NoError(t, err)
			ws := workloads(t, layout{r.Values, objs})
			require.Len(t, ws, 1)
			want, ok := raw[r.Name]
			require.True(t, ok, "a raw manifest runs %s", r.Name)
			got := parseConfig(t, ws[0].Config)
			delete(asMap(at(got, "service", "telemetry")), "resource")
			assert.Equal(t, parseConfig(t, want), got)
		})
	}
}

// Defect: the Kubernetes configs kept the exporters' default queue (1000 requests, in memory),
// so a few minutes of backend outage lost kept spans. Every exporter that sends over the
// network queues on disk, sized in spans, and retries for as long as it takes; a
// load_balancing exporter does so at its top level, where a retry re-routes.
func TestEveryNetworkExporterQueuesOnDisk(t *testing.T) {
	for name, cfg := range shippedConfigs(t) {
		if strings.HasPrefix(name, "bench/") || strings.HasPrefix(name, "e2e/") {
			continue // test configs, each with its own purpose
		}
		// collector-config.yaml as make run starts it with a backend.
		cfg = bytes.ReplaceAll(cfg, []byte(exportersDefault), []byte(exportersWithBackend))
		parsed := parseConfig(t, cfg)
		for _, id := range traceExporters(parsed) {
			kind, _, _ := strings.Cut(id, "/")
			if kind == "debug" {
				continue
			}
			e := at(parsed, "exporters", id)
			t.Run(name+"/"+id, func(t *testing.T) {
				assert.Equal(t, true, at(e, "sending_queue", "enabled"))
				assert.NotEmpty(t, at(e, "sending_queue", "storage"))
				assert.Equal(t, "items", at(e, "sending_queue", "sizer"))
				assert.GreaterOrEqual(t, at(e, "sending_queue", "queue_size"), 100_000)
				assert.Equal(t, true, at(e, "retry_on_failure", "enabled"))
				assert.Equal(t, "0s", at(e, "retry_on_failure", "max_elapsed_time"))
				if kind == "load_balancing" {
					// The persistent queue above holds a batch until each gateway has it: none per
					// gateway. Per-gateway retries are quick, so that a gateway back from a restart
					// gets the spans it missed within vsr_sampler's rescue window of their siblings.
					assert.Equal(t, false, at(e, "protocol", "otlp", "sending_queue", "enabled"))
					assert.Equal(t, true, at(e, "protocol", "otlp", "retry_on_failure", "enabled"))
					maxInterval, err := time.ParseDuration(fmt.Sprint(at(e, "protocol", "otlp", "retry_on_failure", "max_interval")))
					require.NoError(t, err)
					assert.Less(t, maxInterval, rescueWindow)
				}
			})
		}
	}
}

// rescueWindow is vsr_sampler's default rescue_window.
var rescueWindow = vsrsampler.NewFactory().CreateDefaultConfig().(*vsrsampler.Config).RescueWindow

// collector-config.yaml's traces exporters: debug alone, or with the backends.
const (
	exportersDefault     = "${env:VSR_EXPORTERS:-[debug]}"
	exportersWithBackend = "[debug, otlp_grpc/backend, otlp_http/backend]"
)

// traceExporters are the exporters a config's traces pipelines use.
func traceExporters(cfg map[string]any) []string {
	var ids []string
	for name, p := range asMap(at(cfg, "service", "pipelines")) {
		if used, ok := at(p, "exporters").([]any); ok && strings.HasPrefix(name, "traces") {
			for _, id := range used {
				ids = append(ids, id.(string))
			}
		}
	}
	return ids
}

// Each alert's runbook is a section of the README.
func TestAlertsHaveRunbooks(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	require.NoError(t, err)
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(readme), -1) {
		anchors[githubAnchor(m[1])] = true
	}
	rules := objectsOf[monitoringv1.PrometheusRule](manifest(t, "monitoring.yaml"))
	require.Len(t, rules, 1)
	alerts := 0
	for _, g := range rules[0].Spec.Groups {
		for _, r := range g.Rules {
			alerts++
			require.NotEmpty(t, r.Alert)
			url := r.Annotations["runbook_url"]
			_, anchor, ok := strings.Cut(url, "#")
			require.True(t, ok, "%s has a runbook", r.Alert)
			assert.True(t, anchors[anchor], "%s: README has the section #%s", r.Alert, anchor)
			assert.Contains(t, []string{"critical", "warning", "info"}, r.Labels["severity"])
		}
	}
	assert.GreaterOrEqual(t, alerts, 6)
}

// githubAnchor is the fragment GitHub gives a heading.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('0' <= r && r <= '9'):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// shippedConfigs are every collector config the project ships or tests with, by name.
func shippedConfigs(t *testing.T) map[string][]byte {
	configs := map[string][]byte{}
	root, err := os.ReadFile(filepath.Join(repoRoot, "collector-config.yaml"))
	require.NoError(t, err)
	configs["collector-config.yaml"] = root
	for _, l := range layouts(t) {
		for _, w := range workloads(t, l) {
			configs[l.name+"/"+w.Name] = w.Config
		}
	}
	for _, dir := range []string{"bench", "e2e"} {
		files, err := filepath.Glob(filepath.Join(repoRoot, dir, "configs", "*.yaml"))
		require.NoError(t, err)
		require.NotEmpty(t, files, dir)
		for _, f := range files {
			raw, err := os.ReadFile(f)
			require.NoError(t, err)
			configs[path.Join(dir, filepath.Base(f))] = raw
		}
	}
	return configs
}

func TestShippedConfigsValidate(t *testing.T) {
	bin := otelcolBinary(t)
	env := append(os.Environ(),
		"VSR_TRACES_ENDPOINT=127.0.0.1:4317", "VSR_TRACES_INSECURE=true", "VSR_TRACES_CA_FILE=",
		"VSR_HASH_KEY=0123456789abcdef0123", "MY_POD_IP=127.0.0.1", "VSR_STORAGE_DIR="+t.TempDir(),
		// What the chart's pods have in their environment.
		"OTEL_K8S_NODE_NAME=node-1", "OTEL_K8S_NODE_IP=10.0.0.1", "OTEL_K8S_NAMESPACE=observability",
		"OTEL_K8S_POD_NAME=otelcol-vsr-abcde", "OTEL_K8S_POD_IP=10.1.0.1",
		// The benchmark's and end-to-end tests' configs take their ports from the environment.
		"BENCH_OTLP_PORT=14317", "BENCH_HEALTH_PORT=14318", "BENCH_SINK=127.0.0.1:14319",
		"E2E_OTLP_PORT=14317", "E2E_HEALTH_PORT=14318", "E2E_METRICS_PORT=14320",
		"CANARY_MODE=fix", "CANARY_OUT="+filepath.Join(t.TempDir(), "exported.json"), "VSR_SPILL_DIR="+t.TempDir(), "VSR_JOURNAL_DIR="+t.TempDir())
	variants := map[string][]string{"": nil, " with backend": {"VSR_EXPORTERS=" + exportersWithBackend}}
	for name, cfg := range shippedConfigs(t) {
		for variant, extra := range variants {
			if variant != "" && name != "collector-config.yaml" {
				continue
			}
			t.Run(name+variant, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "config.yaml")
				require.NoError(t, os.WriteFile(path, cfg, 0o600))
				cmd := exec.Command(bin, "validate", "--config", path)
				cmd.Env = append(env, extra...)
				out, err := cmd.CombinedOutput()
				require.NoError(t, err, "%s", out)
			})
		}
	}
}

// A config with a mistake must fail validation, or the test above proves nothing.
func TestValidateCatchesMistakes(t *testing.T) {
	bin := otelcolBinary(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	bad := strings.Replace(string(shippedConfigs(t)["collector-config.yaml"]), "default_percentage:", "default_percent:", 1)
	require.NoError(t, os.WriteFile(path, []byte(bad), 0o600))
	out, err := exec.Command(bin, "validate", "--config", path).CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "default_percent")
}

// The Dockerfile is checked statically: no engine runs here to build it. TestDockerfileMatchesImage
// compares its final stage with the image make image builds.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	stages, final := parseDockerfile(t)
	require.GreaterOrEqual(t, len(stages), 2, "multi-stage")
	assert.Regexp(t, `^(scratch|gcr\.io/distroless/\S+)$`, final.from, "final stage from scratch or distroless")
	assert.Equal(t, "10001:10001", final.user)
	assert.ElementsMatch(t, []string{"4317", "4318", "13133", "8888", "8889"}, final.exposes)
	assert.True(t, strings.HasPrefix(final.entrypoint, "["), "exec-form entrypoint, so signals reach the collector")
	assert.Contains(t, string(raw), "CGO_ENABLED=0", "a static binary for a libc-less image")
	for _, f := range stages[:len(stages)-1] {
		assert.Contains(t, f, " AS ", fmt.Sprintf("build stage %q is named", f))
	}
	// Defect: the built-in config's spill defaulted under the working directory, which uid
	// 10001 cannot write; every directory the config writes is set and owned by the user.
	for _, dirEnv := range []string{"VSR_STORAGE_DIR", "VSR_SPILL_DIR", "VSR_JOURNAL_DIR"} {
		dir := final.env[dirEnv]
		require.NotEmpty(t, dir, "%s is set", dirEnv)
		assert.True(t, slices.ContainsFunc(final.ownedCopies, func(dst string) bool { return dir == dst || strings.HasPrefix(dir, dst+"/") }),
			"%s (%s) is created owned by 10001", dirEnv, dir)
	}
}

// Defect: without a .dockerignore, COPY . . took the host's _build/ and .tools/ into the build.
func TestDockerignoreKeepsHostBuildsOut(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	require.NoError(t, err)
	var patterns []string
	for line := range strings.Lines(string(raw)) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, line)
		}
	}
	gitignore, err := os.ReadFile(filepath.Join(repoRoot, ".gitignore"))
	require.NoError(t, err)
	for line := range strings.Lines(string(gitignore)) {
		ignored := strings.Trim(strings.TrimSpace(line), "/")
		if ignored == "" {
			continue
		}
		assert.True(t, slices.ContainsFunc(patterns, func(p string) bool { return strings.TrimPrefix(p, "**/") == ignored }),
			".dockerignore leaves out %s, which .gitignore ignores", ignored)
	}
	assert.Contains(t, patterns, ".git")
}
